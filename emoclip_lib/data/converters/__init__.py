"""Converters of the official MAFW, DFEW, FERV39k and AFEW releases into manifests, one module each."""
from .mafw import MAFW_SUBSETS as MAFW_SUBSETS
from .registry import DATASETS as DATASETS
from .registry import DISPLAY_NAMES as DISPLAY_NAMES
from .registry import convert as convert
from .registry import with_subjects as with_subjects
