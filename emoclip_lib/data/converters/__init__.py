"""Converters of the official MAFW, DFEW, FERV39k and AFEW releases into manifests, one module each."""
from .mafw import SUBSETS as MAFW_SUBSETS
from .registry import DATASETS as DATASETS
from .registry import convert as convert
