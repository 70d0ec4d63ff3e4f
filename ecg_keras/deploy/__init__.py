"""Deployment: the serving endpoint (``serving``), TFLite conversion (``lite``), what is
exported (``export_source``), the artifact checks (``export_check``) and the runtime that
loads an export (``runtime``). The ``export`` and ``predict`` commands drive it."""
