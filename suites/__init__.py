"""Built-in suites. Each is a package registered through the ``harness.suites`` entry-point
group in the project's pyproject.toml, exactly as a third-party suite would be."""
