"""`neurank serve`: the query layer as an HTTP service with a search page."""

from neurank.serve.options import ServeOptions, load_options

__all__ = ["ServeOptions", "load_options"]
