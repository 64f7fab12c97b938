import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgclf.data import images, jpeg
from imgclf.data.images import BadImageError, load_image
from tests.conftest import photo


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_every_mode_becomes_rgb_or_gray_in_unit_range(tmp_path, mode):
    rng = np.random.default_rng(0)
    image = photo((200, 40, 40), (50, 30), "RGB", rng)
    image = photo((200, 40, 40), (50, 30), "I;16", rng) if mode == "I;16" else image.convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    image.save(path)
    rgb, gray = load_image(path, (16, 24), 3), load_image(path, (16, 24), 1)
    assert rgb.shape == (16, 24, 3) and gray.shape == (16, 24, 1)
    assert rgb.dtype == np.uint8 and gray.dtype == np.uint8
    if mode in ("RGB", "RGBA", "P", "CMYK"):
        assert rgb[..., 0].mean() > rgb[..., 1].mean() + 0.3 * 255  # still red
    if mode == "I;16":
        # 16-bit values are scaled, not clipped to white: a mid-gray red photo stays mid-gray
        assert 0.2 * 255 < gray.mean() < 0.6 * 255


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png", (10, 10), 3).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = load_image(tmp_path / "rotated.jpg", (40, 20), 1)[..., 0]
    assert upright.shape == (40, 20)
    assert upright[:18].mean() > 0.9 * 255 and upright[22:].mean() < 0.1 * 255  # the white half is now on top


@pytest.mark.parametrize(("content", "why"), [(b"not an image", "cannot identify"), (None, "truncated")])
def test_unreadable_files_raise_bad_image(tmp_path, content, why):
    path = tmp_path / "photo.jpg"
    if content is None:
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(path, quality=95)
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=f"(?i)cannot read .*photo.jpg.*{why}"):
        load_image(path, (8, 8), 3)


def _smooth_photo(seed: int, mode: str = "RGB") -> Image.Image:
    """A 400x533 photo without symmetry: any wrong turn or flip moves most of its pixels."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (14, 10, 3), dtype=np.uint8)).resize(
        (400, 533), Image.BICUBIC).convert(mode)


def _full_decode(path, size: tuple[int, int], channels: int) -> np.ndarray:
    """Every pixel decoded by Pillow, turned upright, then the same resize."""
    with Image.open(path) as stored:
        upright = ImageOps.exif_transpose(stored).convert("RGB" if channels == 3 else "L")
    return images.resize(np.asarray(upright), size).astype(int).reshape(*size, channels)


@pytest.mark.parametrize("shape", [(30, 40), (30, 40, 1), (30, 40, 3)])
def test_resize_keeps_the_channel_axis_as_given(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    resized = images.resize(pixels, (20, 25))
    assert resized.shape == (20, 25, *shape[2:]) and resized.dtype == np.uint8


def test_resize_averages_what_it_shrinks_more_than_twice_and_is_bilinear_up_to_twice(monkeypatch):
    """Bilinear reads 2 source pixels a side: shrunk further it would skip some, and alias."""
    stripes = np.zeros((600, 600), np.uint8)
    stripes[:, ::4] = 255  # a fabric's weave: one pixel in four lit
    shrunk = images.resize(stripes, (150, 150)).astype(int)
    assert np.abs(shrunk - 255 / 4).max() <= 1  # their mean, where bilinear reads only the dark ones
    banner = np.zeros((100, 1000), np.uint8)
    banner[:, ::4] = 255
    shrunk = images.resize(banner, (150, 150))  # 6.7x narrower, 1.5x taller: 1 or 2 lit pixels a column
    assert abs(shrunk.mean() - 255 / 4) < 1 and shrunk.min() > 0
    filters, resize = [], images.cv2.resize

    def recorded(src, dsize, interpolation):
        filters.append(interpolation)
        return resize(src, dsize, interpolation=interpolation)

    monkeypatch.setattr(images.cv2, "resize", recorded)
    for shape in ((600, 600), (200, 150), (150, 300), (150, 301), (50, 80), (100, 600)):
        images.resize(np.zeros(shape, np.uint8), (150, 150))
    cv2 = images.cv2
    assert filters == [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_LINEAR,
                       cv2.INTER_AREA, cv2.INTER_LINEAR]  # the last: shrunk to 100x150, then enlarged


def test_resize_to_the_size_it_has_gives_a_new_writable_array():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    pixels.flags.writeable = False  # as np.asarray gives a Pillow image's pixels
    same = images.resize(pixels, (2, 2))
    same[0, 0, 0] = 99
    assert same.flags.writeable and pixels[0, 0, 0] == 0


@pytest.fixture
def reduced_decodes(monkeypatch):
    """The arrays libjpeg-turbo (simplejpeg) decoded, in order; a decode it refused adds nothing."""
    decoded, decode = [], jpeg.simplejpeg.decode_jpeg

    def recorded(*args, **kwargs):
        decoded.append(decode(*args, **kwargs))
        return decoded[-1]

    monkeypatch.setattr(jpeg.simplejpeg, "decode_jpeg", recorded)
    return decoded


def test_jpeg_is_decoded_at_reduced_size_close_to_a_full_decode(tmp_path, reduced_decodes):
    """A 400x533 photo to 150x150 is decoded at 3/8 (150x200): close to decoding every pixel."""
    _smooth_photo(3).save(tmp_path / "photo.jpg", quality=90)
    reduced = load_image(tmp_path / "photo.jpg", (150, 150), 3).astype(int)
    assert [d.shape for d in reduced_decodes] == [(200, 150, 3)]
    difference = np.abs(reduced - _full_decode(tmp_path / "photo.jpg", (150, 150), 3)).mean()
    assert 0 < difference < 1.5, difference  # of 255


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("RGB", 1), ("L", 3)])
def test_reduced_jpeg_decode_is_turned_upright_like_a_full_decode(tmp_path, reduced_decodes, orientation, mode,
                                                                  channels):
    image = _smooth_photo(orientation, mode)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=90)
    reduced = load_image(tmp_path / "photo.jpg", (150, 120), channels).astype(int)
    assert len(reduced_decodes) == 1  # by libjpeg-turbo, not Pillow
    assert np.abs(reduced - _full_decode(tmp_path / "photo.jpg", (150, 120), channels)).mean() < 1.5


def test_a_jpeg_the_reduced_decoder_flags_is_decoded_by_pillow(tmp_path, reduced_decodes):
    """Stray bytes before the scan: libjpeg-turbo warns (refused, strict), Pillow decodes it as before."""
    _smooth_photo(5).save(tmp_path / "photo.jpg", quality=90)
    data = (tmp_path / "photo.jpg").read_bytes()
    scan = data.index(b"\xff\xda")
    (tmp_path / "photo.jpg").write_bytes(data[:scan] + b"\x00\x00" + data[scan:])
    reduced = load_image(tmp_path / "photo.jpg", (150, 150), 3).astype(int)
    assert reduced_decodes == []
    assert np.abs(reduced - _full_decode(tmp_path / "photo.jpg", (150, 150), 3)).mean() < 2.0


class _Stream(io.RawIOBase):
    """An upload read as it arrives: no seeking back."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


def test_file_objects_decode_like_the_file(tmp_path, reduced_decodes):
    _smooth_photo(6).save(tmp_path / "photo.jpg", quality=90)
    data = (tmp_path / "photo.jpg").read_bytes()
    from_file = load_image(tmp_path / "photo.jpg", (150, 150), 3)
    read_already = io.BytesIO(data)
    read_already.read(100)  # e.g. a sniffed header: Pillow reads from the start
    for stream in (io.BytesIO(data), read_already, _Stream(data)):
        np.testing.assert_array_equal(load_image(stream, (150, 150), 3), from_file)
    assert len(reduced_decodes) == 4


def test_a_phone_mpo_is_decoded_from_its_main_picture(tmp_path, reduced_decodes):
    main, second = _smooth_photo(7), Image.new("RGB", (400, 533))
    main.save(tmp_path / "photo.mpo", format="MPO", save_all=True, append_images=[second], quality=90)
    main.save(tmp_path / "photo.jpg", quality=90)
    with Image.open(tmp_path / "photo.mpo") as image:
        assert image.format == "MPO"
    from_mpo = load_image(tmp_path / "photo.mpo", (150, 150), 3).astype(int)
    assert len(reduced_decodes) == 1
    assert np.abs(from_mpo - load_image(tmp_path / "photo.jpg", (150, 150), 3)).mean() < 0.5


@pytest.fixture
def pillow_opens(monkeypatch):
    """The files Pillow opened (its header parser runs for each); the plain JPEG path opens none."""
    opened, open_image = [], images.Image.open

    def recorded(fp, *args, **kwargs):
        opened.append(fp)
        return open_image(fp, *args, **kwargs)

    monkeypatch.setattr(images.Image, "open", recorded)
    return opened


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("RGB", 1), ("L", 3), ("L", 1)])
def test_a_plain_jpeg_skips_pillow_and_gives_the_pixels_of_the_pillow_path(tmp_path, reduced_decodes, pillow_opens,
                                                                          mode, channels, progressive):
    """Without EXIF or XMP, a JPEG file is decoded straight by libjpeg-turbo, to the same bytes as
    through Pillow's header (the path a file object takes)."""
    _smooth_photo(8, mode).save(tmp_path / "photo.jpg", quality=90, progressive=progressive)
    plain = load_image(tmp_path / "photo.jpg", (150, 120), channels)
    assert pillow_opens == [] and len(reduced_decodes) == 1
    through_pillow = load_image(io.BytesIO((tmp_path / "photo.jpg").read_bytes()), (150, 120), channels)
    assert len(pillow_opens) == 1 and len(reduced_decodes) == 2
    assert plain.shape == (150, 120, channels) and plain.dtype == np.uint8
    np.testing.assert_array_equal(plain, through_pillow)


def test_a_jpeg_with_exif_or_xmp_is_read_by_pillow(tmp_path, reduced_decodes, pillow_opens):
    """Either may hold an orientation, which Pillow reads: such a file takes the path through its header."""
    image = _smooth_photo(9)
    image.save(tmp_path / "exif.jpg", exif=image.getexif().tobytes(), quality=90)
    image.save(tmp_path / "xmp.jpg", xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>', quality=90)
    for name in ("exif.jpg", "xmp.jpg"):
        load_image(tmp_path / name, (150, 150), 3)
    assert [Path(p).name for p in pillow_opens] == ["exif.jpg", "xmp.jpg"]
    assert len(reduced_decodes) == 2  # still decoded at the reduced size


def test_a_cmyk_or_damaged_jpeg_is_left_to_pillow(tmp_path, reduced_decodes, pillow_opens):
    _smooth_photo(10).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    cmyk = load_image(tmp_path / "cmyk.jpg", (150, 150), 3)
    assert cmyk.shape == (150, 150, 3) and [Path(p).name for p in pillow_opens] == ["cmyk.jpg"]
    _smooth_photo(11).save(tmp_path / "cut.jpg", quality=90)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:2000])  # past the header, into the scan
    with pytest.raises(BadImageError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg", (150, 150), 3)
    assert [Path(p).name for p in pillow_opens] == ["cmyk.jpg", "cut.jpg"]  # Pillow judged it, as before


def test_the_plain_jpeg_path_keeps_pillows_decompression_bomb_check(tmp_path, monkeypatch):
    _smooth_photo(12).save(tmp_path / "photo.jpg", quality=90)
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 400 * 533 // 3)  # the photo is over twice the limit
    with pytest.raises(BadImageError, match="(?i)photo.jpg.*decompression bomb"):
        load_image(tmp_path / "photo.jpg", (150, 150), 3)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])  # a TIFF warns while loading, not opening
def test_a_large_photo_under_the_bomb_limit_loads_without_a_warning(tmp_path, monkeypatch, recwarn, suffix):
    """Over Pillow's pixel limit but under twice it: decoded, and its warning kept out of the stage's
    output, alone and in preprocess's threads."""
    from imgclf.data.preprocess import decode_images

    for i in range(70):
        Image.fromarray(np.full((60, 50, 3), i, np.uint8)).save(tmp_path / f"large{i:02d}{suffix}")
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 60 * 50 - 1)
    assert load_image(tmp_path / f"large00{suffix}", (8, 8), 3).shape == (8, 8, 3)
    decoded = list(decode_images(sorted(tmp_path.iterdir()), (8, 8), 3, workers=2, batch=4))
    assert [int(d[0, 0, 0]) for d in decoded] == list(range(70))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize(("marker", "payload", "decodes"), [
    (0xE0, b"JFIF\0", False),  # shorter than the JFIF header Pillow reads
    (0xEE, b"Adobe", False),
    (0xE2, b"ICC_PROFILE\0", False),  # no chunk numbers
    (0xE2, b"ICC_PROFILE\0\x01\x01" + bytes(40), True),  # a whole one: decoded on the plain path
])
def test_a_file_and_its_bytes_agree_on_a_jpeg_with_odd_app_segments(tmp_path, marker, payload, decodes):
    """Pillow refuses some segments it parses when short; the plain path leaves those files to it."""
    _smooth_photo(13).save(tmp_path / "photo.jpg", quality=90)
    data = (tmp_path / "photo.jpg").read_bytes()
    segment = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    (tmp_path / "photo.jpg").write_bytes(data[:2] + segment + data[2:])

    def from_bytes():
        return io.BytesIO((tmp_path / "photo.jpg").read_bytes())

    if decodes:
        from_file = load_image(tmp_path / "photo.jpg", (150, 150), 3)
        assert from_file.shape == (150, 150, 3)
        np.testing.assert_array_equal(from_file, load_image(from_bytes(), (150, 150), 3))
    else:  # each path refuses it as Pillow does, as a bad image (skipped), never another error
        with pytest.raises(BadImageError, match="photo.jpg"):
            load_image(tmp_path / "photo.jpg", (150, 150), 3)
        with pytest.raises(BadImageError):
            load_image(from_bytes(), (150, 150), 3)


def test_the_jpeg_fast_path_switched_off_gives_the_same_pixels(tmp_path, monkeypatch):
    """IMGCLF_JPEG_FAST_PATH=0 leaves the plain JPEG to Pillow's header parser: only the speed changes."""
    _smooth_photo(3).save(tmp_path / "photo.jpg", quality=90)
    fast = load_image(tmp_path / "photo.jpg", (150, 150), 3)
    monkeypatch.setenv("IMGCLF_JPEG_FAST_PATH", "0")
    calls = []
    monkeypatch.setattr(jpeg, "_plain_jpeg_frame", lambda head: calls.append(head) or None)
    np.testing.assert_array_equal(load_image(tmp_path / "photo.jpg", (150, 150), 3), fast)
    assert calls == []  # the marker parser was not asked
