"""Runs the real `docextract` command line with the fake engine and the receipt schema, for tests
that need a real process (SIGKILL, SIGINT). Usage: python fake_cli.py DELAY_S ARGS..."""

import importlib.util
import os
import sys
import time
from pathlib import Path

spec = importlib.util.spec_from_file_location("_conftest", Path(__file__).parents[1] / "conftest.py")
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)

from docextract import cli, pipeline, schemas  # noqa: E402

delay = float(sys.argv.pop(1))
receipt = conftest._receipt_spec()
real_get = schemas.get
schemas.get = lambda name: receipt if name == "receipt" else real_get(name)


def answer(request):
    if os.environ.get("FAKE_CLI_READY"):  # tells a test that the extraction has started
        Path(os.environ["FAKE_CLI_READY"]).touch()
    time.sleep(delay)
    return '{"id_number":"234123412346","items":[1,2],"total":3}'


pipeline.load_engine = lambda opts, console: conftest.FakeEngine(answer)
cli.main()
