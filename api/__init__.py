"""HTTP (FastAPI app factory and routers) and the ``sibiao`` command line."""
