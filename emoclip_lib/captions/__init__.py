"""Caption curation: cleaning, exact and near duplicates, vocabulary, token-length and class-name leakage audits."""
from .curate import curate as curate
from .curate import CurationReport as CurationReport
from .curate import summary_json as summary_json
