"""Help, version, usage errors, doctor, and the console's stream discipline."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from docextract.cli import app
from docextract.console import Console
from docextract.errors import InputError

COMMANDS = [["run"], ["batch"], ["schemas"], ["validate"], ["pages"], ["doctor"], ["review"],
            ["model", "pull"], ["model", "info"], ["model", "quantize"]]


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_top_level_help_lists_commands_and_examples():
    res = invoke("--help")
    assert res.exit_code == 0
    for name in ("run", "batch", "schemas", "validate", "pages", "model", "doctor", "Examples"):
        assert name in res.stdout


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help_with_an_example(cmd):
    res = invoke(*cmd, "--help")
    assert res.exit_code == 0
    assert "Example" in res.stdout and "docextract " + " ".join(cmd) in res.stdout


def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.startswith("docextract ")


def test_console_script_usage_error_is_one_error_line_and_a_hint():
    proc = subprocess.run([sys.executable, "-c", "from docextract.cli import main; main()",
                           "run", "x.pdf", "--no-such-flag"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "--no-such-flag" in lines[0]
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_missing_required_option_is_exit_2():
    proc = subprocess.run([sys.executable, "-c", "from docextract.cli import main; main()",
                           "run", "x.pdf"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def test_quantize_of_a_folder_without_a_model_is_an_error(tmp_path):
    res = invoke("model", "quantize", str(tmp_path), "--out", str(tmp_path / "q"))
    assert res.exit_code in (2, 4)
    assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr


def test_doctor_reports_json_and_exit_0():
    res = invoke("doctor", "--json")
    assert res.exit_code == 0
    report = json.loads(res.stdout)
    assert report["usable"] is True
    assert report["gpu"]["cuda"] in (True, False)
    assert report["dependencies"]["torch"]


def test_console_pretty_on_tty_compact_when_piped():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    Console(stdout=tty).emit({"a": [1, 2], "name": "राम"})
    Console(stdout=pipe).emit({"a": [1, 2], "name": "राम"})
    assert tty.getvalue().count("\n") > 1
    assert pipe.getvalue() == '{"a":[1,2],"name":"राम"}\n'


def test_console_errors_hints_quiet_and_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    err = io.StringIO()
    c = Console(stderr=err, quiet=True)
    c.info("hidden")
    c.warn("hidden too")
    c.report(InputError("scan.pdf: not a PDF\nsecond line", hint="check the file"))
    assert err.getvalue() == "error: scan.pdf: not a PDF second line\nhint: check the file\n"


def test_traceback_only_with_verbose():
    def boom():
        raise ValueError("bad")

    for verbose in (False, True):
        err = io.StringIO()
        try:
            boom()
        except ValueError as exc:
            Console(stderr=err, verbose=verbose).report(exc)
        assert ("Traceback" in err.getvalue()) is verbose
        assert "error: internal error: ValueError: bad" in err.getvalue()


def test_validate_refuses_nan_as_not_json():
    res = CliRunner().invoke(app, ["validate", "-", "-s", "pan"], input="NaN")
    assert res.exit_code == 3 and "not JSON" in res.stderr


def test_library_warnings_and_logs_only_show_with_verbose():
    import logging
    import warnings

    for verbose in (False, True):
        err = io.StringIO()
        Console(stderr=err, verbose=verbose).capture_library_output()
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
        logging.getLogger("some.lib").warning("noisy")
        assert ("deprecated thing" in err.getvalue()) is verbose
        assert ("noisy" in err.getvalue()) is verbose


@pytest.mark.parametrize("args,address", [
    (["--ray"], "auto"),
    (["--ray", "--out", "o.jsonl"], "auto"),
    (["--ray", "10.0.0.5:6379"], "10.0.0.5:6379"),
    (["--ray", "ray://head:10001", "-q"], "ray://head:10001"),
    ([], None),
])
def test_ray_given_alone_means_auto(monkeypatch, tmp_path, args, address):
    from docextract import cli, raybatch

    seen = []
    monkeypatch.setattr(raybatch, "run_ray_batch", lambda *a, **kw: seen.append(kw["address"]) or 0)
    monkeypatch.chdir(tmp_path)
    argv = ["batch", "in", "-s", "pan", *args]
    if "--out" not in argv:
        argv += ["--out", "o.jsonl"]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert seen == ([address] if address else [])
    assert stop.value.code in (0, 3)  # without --ray: the missing input folder
