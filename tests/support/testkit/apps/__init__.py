"""Apps and nodes that tests run as OS processes of their own: ``alight run
testkit.apps.hostile:app``, ``python -m testkit.apps.node_main NAME``, ... (the tests'
``PYTHONPATH`` includes ``tests/support``)."""
