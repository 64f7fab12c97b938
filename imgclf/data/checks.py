"""The dataset doctor in the split stage: data.checks' policies applied to its findings, and what the
stage reports of them.

The findings are made on the parts as the source gives them (train, and the val/test folders or the
source's test set), before any carving. Then:

- a group of copies across given parts (a leak: the test would score photos the model trained on) keeps
  its copy in the first of train, val, test and loses the others (`leak: drop`), is kept (`warn`), or
  stops the stage (`fail`);
- a group filed under two classes (a conflicting label) loses its val/test copies and keeps its train
  copies in train (`conflict: drop`: which label is right, only the user knows, so it is not scored),
  is kept (`warn`), or stops the stage (`fail`);
- when the stage carves val or test out of train, every group goes whole to one split
  (imgclf.data.split.SplitConstraints), so a carved split cannot leak whatever the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgclf.data.doctor import DoctorSettings, DuplicateGroup, Findings, HashedPart, ImageHashes, balance, examine
from imgclf.data.split import SplitConstraints, SplitPlan
from imgclf.errors import PipelineError
from imgclf.params import ChecksParams

PART_ORDER = ("train", "val", "test")  # which copy of a leaked group stays: the first part's
SHOWN_GROUPS = 20  # groups the report shows with thumbnails; the rest are counted
SHOWN_MEMBERS = 6  # thumbnails per group shown
LISTED = 200  # names listed per kind in findings.json (small, gray); the counts are whole


@dataclass(frozen=True)
class Examined:
    """Every image of the given parts, one index each (the parts concatenated in PART_ORDER): its part,
    its row in the part, its label and name, and the findings on all of them."""

    parts: np.ndarray  # (N,) str
    rows: np.ndarray  # (N,) int
    labels: np.ndarray  # (N,) int
    names: tuple[str, ...]
    findings: Findings

    def index(self, part: str, rows: np.ndarray) -> np.ndarray:
        """The indices of a part's rows."""
        return np.flatnonzero(self.parts == part)[rows]


@dataclass(frozen=True)
class Treatment:
    """What the policies decided: the indices dropped from val/test (with why: "leak" or "conflict") and
    the constraints the split plan follows."""

    dropped: dict[int, str]
    constraints: SplitConstraints


def examine_parts(hashed: dict[str, HashedPart], labels: dict[str, np.ndarray], images: dict[str, np.ndarray],
                  num_classes: int, image_size: tuple[int, int], checks: ChecksParams) -> Examined:
    """The findings on the given parts, from the hashes preprocess saved (and the images, memory-mapped: the
    few in a near pair are read, to tell exact copies)."""
    parts = [p for p in PART_ORDER if p in labels]
    names = []
    for part in parts:
        part_names = hashed[part].names
        names += ([str(n) for n in part_names] if part_names is not None
                  else [f"{part}[{row}]" for row in range(len(labels[part]))])
    settings = DoctorSettings(min_class_count=checks.min_class_count, small_fraction=checks.small_fraction)
    part_of = np.concatenate([np.full(len(labels[p]), p) for p in parts])
    all_labels = np.concatenate([labels[p] for p in parts])
    rows = np.concatenate([np.arange(len(labels[p])) for p in parts])

    def pixels(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *images[parts[0]].shape[1:]), images[parts[0]].dtype)
        for part in parts:  # a part's rows in one read each (ascending: a memory-mapped file read in order)
            mine = part_of[indices] == part
            out[mine] = images[part][rows[indices[mine]]]
        return out

    findings = examine(ImageHashes.concatenate([hashed[p].hashes for p in parts]), all_labels, part_of, num_classes,
                       pixels, np.concatenate([hashed[p].sizes for p in parts]), image_size, settings)
    return Examined(part_of, rows, all_labels, tuple(names), findings)


def treat(examined: Examined, checks: ChecksParams, class_names: list[str]) -> Treatment:
    """Apply the policies; a `fail` policy with findings raises, naming every file (one line per group)."""
    findings = examined.findings
    conflicts, leaks = findings.conflicts, findings.leaks
    if conflicts and checks.conflict == "fail":
        raise PipelineError(
            f"{len(conflicts)} picture(s) are filed under two classes (data.checks.conflict = fail):\n  "
            + "\n  ".join(describe_group(g, examined, class_names) for g in conflicts)
            + "\nfix: keep each picture in its one class folder, or set data.checks.conflict: drop "
              "(keeps them out of validation and test)")
    if leaks and checks.leak == "fail":
        raise PipelineError(
            f"{len(leaks)} picture(s) are in two of the train/validation/test parts (data.checks.leak = fail):\n  "
            + "\n  ".join(describe_group(g, examined, class_names) for g in leaks)
            + "\nfix: remove the validation/test copies, or set data.checks.leak: drop (drops them for you)")
    dropped: dict[int, str] = {}
    if checks.leak == "drop":
        for group in leaks:
            first = min(PART_ORDER.index(p) for p in group.parts)
            dropped |= {i: "leak" for i, p in zip(group.members, group.parts) if PART_ORDER.index(p) > first}
    pinned = None
    if checks.conflict == "drop":
        for group in conflicts:
            dropped |= {i: "conflict" for i, p in zip(group.members, group.parts) if p != "train"}
        in_conflict = [i for g in conflicts for i in g.members if examined.parts[i] == "train"]
        if in_conflict:
            pinned = np.zeros(int((examined.parts == "train").sum()), bool)
            pinned[examined.rows[in_conflict]] = True
    train = np.flatnonzero(examined.parts == "train")
    train_groups = None
    if any(g.parts.count("train") > 1 for g in findings.groups):
        group_of = np.arange(len(examined.parts))
        for group in findings.groups:
            group_of[list(group.members)] = group.members[0]
        train_groups = group_of[train]
    by_part = {part: np.sort(examined.rows[[i for i in dropped if examined.parts[i] == part]]).astype(np.int64)
               for part in PART_ORDER if part in set(examined.parts[list(dropped)])}
    return Treatment(dropped, SplitConstraints(by_part, train_groups, pinned))


def final_splits(examined: Examined, plan: SplitPlan) -> np.ndarray:
    """The split each image ended in ("train", "val", "test"), or "dropped"."""
    final = np.full(len(examined.parts), "dropped", dtype="<U7")
    for name, (part, rows) in plan.items():
        final[examined.index(part, rows)] = name
    return final


def metrics(examined: Examined, treatment: Treatment, final: np.ndarray, num_classes: int,
            min_class_count: int) -> dict:
    """metrics/checks.json: counts per finding, and per split the duplicates, the imbalance (largest class
    over smallest; null when a class has none) and the classes under the minimum count."""
    findings = examined.findings
    counts = findings.counts()
    splits = [s for s in PART_ORDER if (final == s).any()]
    kept = final != "dropped"
    balanced = {b.part: b for b in balance(examined.labels[kept], final[kept], num_classes, min_class_count)}
    duplicates = dict.fromkeys(splits, 0)
    leaks_left = 0
    for group in findings.groups:
        where = [str(final[i]) for i in group.members if final[i] != "dropped"]
        for split in set(where):
            duplicates[split] += where.count(split) - 1
        leaks_left += len(set(where)) > 1
    return {
        "exact_duplicates": counts["exact_duplicates"],
        "near_duplicates": counts["near_duplicates"],
        "conflicting_groups": counts["conflicting_groups"],
        "leaked_groups": counts["leaked_groups"],
        "dropped_images": len(treatment.dropped),
        "leaks_left": leaks_left,
        "small_images": counts["small_images"],
        "gray_images": counts["gray_images"],
        "duplicates": duplicates,
        "imbalance": {s: (round(balanced[s].ratio, 4) if np.isfinite(balanced[s].ratio) else None) for s in splits},
        "classes_under_minimum": {s: len(balanced[s].under_minimum) for s in splits},
    }


def findings_record(examined: Examined, treatment: Treatment, final: np.ndarray, class_names: list[str],
                    summary: dict, policy: ChecksParams) -> dict:
    """data/checks/findings.json: what a person acts on, by file name. The first SHOWN_GROUPS groups with
    each member's split (thumbnail k: the k-th image of thumbnails.npy), every dropped image with why,
    every conflicting group, and the small and gray images (the first LISTED)."""
    findings = examined.findings
    thumbnail = 0
    groups = []
    for group in findings.groups[:SHOWN_GROUPS]:
        members = []
        for k, i in enumerate(group.members):
            shown = k < SHOWN_MEMBERS
            members.append({**_member(i, examined, class_names), "split": str(final[i]),
                            "thumbnail": thumbnail if shown else None})
            thumbnail += shown
        groups.append({"kind": group.kind, "leak": group.leaks, "conflicting": group.conflicting,
                       "members": members})
    return {
        "counts": summary,
        "policy": {"leak": policy.leak, "conflict": policy.conflict},
        "groups_total": len(findings.groups),
        "groups": groups,
        "dropped": [{**_member(i, examined, class_names), "reason": why}
                    for i, why in sorted(treatment.dropped.items())],
        "conflicts": [describe_group(g, examined, class_names) for g in findings.conflicts],
        "small": [examined.names[i] for i in findings.small[:LISTED]],
        "gray": [examined.names[i] for i in findings.gray[:LISTED]],
    }


def thumbnail_rows(examined: Examined) -> list[tuple[str, int]]:
    """(part, row) of each thumbnail findings_record numbers, in its order."""
    return [(str(examined.parts[i]), int(examined.rows[i]))
            for group in examined.findings.groups[:SHOWN_GROUPS] for i in group.members[:SHOWN_MEMBERS]]


def describe_group(group: DuplicateGroup, examined: Examined, class_names: list[str]) -> str:
    """One line: each copy's name and class, e.g. `train/shorts/a.jpg (shorts) = test/skirt/b.jpg (skirt)`."""
    return " = ".join(f"{examined.names[i]} ({class_names[examined.labels[i]]})" for i in group.members)


def warnings(examined: Examined, checks: ChecksParams, class_names: list[str], limit: int) -> list[str]:
    """The console's line per conflicting or leaked group (the first `limit` of each), saying what was done."""
    lines = []
    for kind, groups, policy in (("conflicting label", examined.findings.conflicts, checks.conflict),
                                 ("leak across parts", examined.findings.leaks, checks.leak)):
        done = {"drop": "the validation/test copies dropped" if kind == "leak across parts"
                else "kept out of validation/test", "warn": "kept (warn)"}[policy]
        lines += [f"{kind}, {done}: {describe_group(g, examined, class_names)}" for g in groups[:limit]]
        if len(groups) > limit:
            lines.append(f"and {len(groups) - limit} more of them ({kind}): see the report")
    return lines


def summary_line(summary: dict) -> str:
    """The console's one line."""
    imbalance = summary["imbalance"].get("train")
    return (f"split: data checks found {summary['exact_duplicates']} exact and "
            f"{summary['near_duplicates']} near duplicate(s), "
            f"{summary['leaked_groups']} leaked across parts ({summary['dropped_images']} image(s) dropped, "
            f"{summary['leaks_left']} leak(s) left), {summary['conflicting_groups']} conflicting label(s), "
            f"imbalance {imbalance if imbalance is not None else 'inf'} (train), {summary['small_images']} small, "
            f"{summary['gray_images']} gray")


def _member(i: int, examined: Examined, class_names: list[str]) -> dict:
    return {"name": examined.names[i], "label": class_names[examined.labels[i]]}
