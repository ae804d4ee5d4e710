"""The synthetic face-video world: people, faces and expressions, captions, corpora, web pictures, an interview cohort."""
from .cohort import ITEMS as ITEMS
from .releases import RELEASE_DIRS as RELEASE_DIRS
from .releases import releases_info as releases_info
from .releases import write_releases as write_releases
from .web import WEB_FORMAT as WEB_FORMAT
from .web import web_stills as web_stills
from .world import generate_world as generate_world
from .world import render_example as render_example
from .world import resolve_size as resolve_size
from .world import SIZES as SIZES
from .world import SYNTH_VERSION as SYNTH_VERSION
