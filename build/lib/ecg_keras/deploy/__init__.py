"""Deployment: the serving endpoint (``serving``), TFLite conversion (``lite``), writing and
publishing a version (``exporting``), the artifact checks and their numerical contract
(``export_check``) and the runtime that loads an export (``runtime``). What is exported is an
``inference.Predictor``; the ``export`` and ``predict`` commands drive this package."""
