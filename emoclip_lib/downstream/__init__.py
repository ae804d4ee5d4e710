"""Symptom-severity regression: interview features, subject-grouped nested cross-validation, metrics."""
from .feature_file import load_features as load_features
from .feature_file import save_features as save_features
from .features import aggregate as aggregate
from .features import extract_features as extract_features
from .features import feature_matrix as feature_matrix
from .features import STAT_PATTERN as STAT_PATTERN
from .features import subject_features as subject_features
from .nested_cv import grouped_nested_cv as grouped_nested_cv
from .nested_cv import default_n_jobs as default_n_jobs
from .nested_cv import MODELS as MODELS
from .nested_cv import worker_processes as worker_processes
from .regression import AVERAGE_ITEM as AVERAGE_ITEM
from .regression import reference_agreement as reference_agreement
from .regression import regress_items as regress_items
