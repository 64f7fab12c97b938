"""MLflow: the store, the runs' lineage and pages, evaluation runs and the registry's champion."""
