"""Drop the modules of the features this service does not use (cookiecutter renders every file)."""

from pathlib import Path

if "{{ cookiecutter.uses_snowflake }}" != "yes":
    for path in ("app/snowflake.py", "tests/test_snowflake.py"):
        Path(path).unlink()
