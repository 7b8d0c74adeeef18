"""Dataset readers and ingestion: AFEW trees, RAVDESS, CREMA-D, FER-2013, CSV manifests."""

from emonets.datasets.formats import FORMATS, UnknownFormatError, detect_format
from emonets.datasets.ingest import CLIP_COLUMNS, PROBLEM_COLUMNS, IngestResult, ingest, scan_root

__all__ = ["CLIP_COLUMNS", "FORMATS", "PROBLEM_COLUMNS", "IngestResult", "UnknownFormatError",
           "detect_format", "ingest", "scan_root"]
