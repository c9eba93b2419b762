"""The `nnlab` command: every subcommand answers --help with its keys; bad keys and values are one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from nnlab.cli import COMMANDS, main
from nnlab.cli.args import REQUIRED, Command, Key, at_least, nearest, parse
from nnlab.utils.errors import ConfigError

NNLAB = Path(sys.executable).parent / "nnlab"  # the console script `pip install -e .` puts beside python


def nnlab(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / script)] if script else [str(NNLAB)]
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    env.pop("HYDRA_FULL_ERROR")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.skipif(not NNLAB.exists(), reason="nnlab is not installed in this venv (pip install -e .)")
def test_console_script_lists_every_command() -> None:
    r = nnlab("--help")
    assert r.returncode == 0, r.stderr
    for name in ("train", "eval", "predict", "generate", "embeddings", "tsne", "report"):
        assert f"  {name} " in r.stdout


@pytest.mark.skipif(not NNLAB.exists(), reason="nnlab is not installed in this venv (pip install -e .)")
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_answers_help_with_its_keys(command: str) -> None:
    r = nnlab(command, "--help")
    assert r.returncode == 0, r.stderr
    if command in ("train", "eval"):  # Hydra's help: the groups and the composed config
        assert "== Configuration groups ==" in r.stdout and "ckpt_path" in r.stdout
    else:
        assert r.stdout.startswith(f"nnlab {command}: ") and "keys:" in r.stdout
        module = __import__(COMMANDS[command][0], fromlist=["COMMAND"])
        assert all(f"  {k.name} " in r.stdout for k in module.COMMAND.keys)


@pytest.mark.parametrize("script", ["scripts/generate.py", "scripts/predict.py", "scripts/tsne.py"])
def test_scripts_are_the_same_commands(script: str) -> None:
    r = nnlab("--help", script=script)
    assert r.returncode == 0 and r.stdout.startswith(f"nnlab {Path(script).stem}: "), r


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "model.lr=0.1"], "model.lr is not a config key; did you mean model.optimizer.lr?"),
        (["train", "trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
        (["train", "modle=cnn"], "modle is not a config key; did you mean model?"),
        (["train", "model=rnn", "model.hidden=64"], "did you mean model.hidden_size?"),
        (["train", "model=transfomer"], "model=transfomer is not an option of model; choose one of: cnn, convnet"),
        (["train", "data=sst3"], "data=sst3 is not an option of data; did you mean data=sst"),
        (["eval", "ckpt_pth=x.ckpt"], "did you mean ckpt_path?"),
        (["eval", "ckpt_path=x.ckpt", "model=cnn"], "model is not a setting of nnlab eval (the checkpoint brings its"),
        (["trian"], "'trian' is not an nnlab command; did you mean `nnlab train`?"),
        (["generate", "ckpt_pth=x"], "ckpt_pth is not a key of nnlab generate; did you mean ckpt_path?"),
        (["generate", "ckpt_path=/nonexistent.ckpt", "words=-5"], "words=-5 must be >= 1"),
        (["generate", "ckpt_path=/nonexistent.ckpt", "words=abc"], "words='abc' must be an integer"),
        (["generate", "ckpt_path=/nonexistent.ckpt"], "ckpt_path=/nonexistent.ckpt does not exist"),
        (["predict", "batch_size=0", "ckpt_path=x", "text"], "batch_size=0 must be >= 1"),
        (["tsne", "data=digits", "method=fast"], "method='fast' is not a valid choice; choose one of: auto"),
        (["tsne", "--ckpt", "x"], "takes key=value arguments, not '--ckpt'"),
        (["report", "sweep_dir=/"], "holds no sweep jobs"),  # a directory without a sweep: the report's own line
        (["report", "logs"], "takes only key=value arguments"),
    ],
)
def test_bad_keys_and_values_are_one_line_with_the_fix(args: list[str], expected: str, tmp_path, capsys) -> None:
    if args[0] in ("train", "eval"):
        line = one_error_line(nnlab(*args[1:], script=f"{args[0]}.py"))  # python train.py: the same refusal
        assert expected in line, line
        if NNLAB.exists():
            assert one_error_line(nnlab(*args)) == line
        return
    if args[0] == "report":
        args = [a.replace("sweep_dir=/", f"sweep_dir={tmp_path}") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_refusals_in_process_print_one_line(capsys) -> None:
    assert main(["generate", "ckpt_path=/nonexistent.ckpt", "words=-5"]) == 2
    err = capsys.readouterr().err
    assert err == "error: words=-5 must be >= 1\n"
    assert main(["tsne", "data=digits", "ckpt_path=/etc"]) == 2
    assert "ckpt_path=/etc is a directory, not a file" in capsys.readouterr().err


CMD = Command(
    "demo",
    "a demo",
    [
        Key("ckpt_path", REQUIRED, "required", Path),
        Key("n", 3, "count", int, check=at_least(1)),
        Key("rate", 0.5, "rate", float),
        Key("flag", False, "flag", bool),
        Key("words", [], "words", list),
        Key("mode", "a", "mode", choices=("a", "b")),
        Key("out", None, "optional", Path),
    ],
    positional="text",
)


def test_parse_converts_types_and_keeps_bare_arguments() -> None:
    ns = parse(CMD, ["ckpt_path=x.ckpt", "n=7", "rate=1e-3", "flag=true", "words=[a,b]", "mode=b", "a sentence = x"])
    assert (ns.ckpt_path, ns.n, ns.rate, ns.flag, ns.words, ns.mode) == (Path("x.ckpt"), 7, 1e-3, True, ["a", "b"], "b")
    assert ns.text == ["a sentence = x"] and ns.out is None
    assert parse(CMD, ["ckpt_path=x", "words=a,b", "out=null"]).words == ["a", "b"]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["n=2"], "needs ckpt_path=..."),
        (["ckpt_path=x", "n=0"], "n=0 must be >= 1"),
        (["ckpt_path=x", "n=1.5"], "n='1.5' must be an integer"),
        (["ckpt_path=x", "rate=fast"], "rate='fast' must be a number"),
        (["ckpt_path=x", "flag=maybe"], "flag='maybe' must be true or false"),
        (["ckpt_path=x", "mode=c"], "mode='c' is not a valid choice; choose one of: a, b"),
        (["ckpt_path=x", "ckpt_path=y"], "ckpt_path is given twice"),
        (["ckpt_path=x", "wrods=[a]"], "did you mean words?"),
        (["ckpt_path=x", "--n", "3"], "takes key=value arguments, not '--n'"),
    ],
)
def test_parse_refuses_in_one_line(argv: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match.replace("[", r"\[").replace("(", r"\(")) as e:
        parse(CMD, argv)
    assert "\n" not in str(e.value)


def test_nearest_prefers_the_same_leaf_then_the_spelling() -> None:
    keys = ["model.optimizer.lr", "data.lr_data", "model.net.dropout", "trainer.max_epochs", "model"]
    assert nearest("model.lr", keys) == "model.optimizer.lr"
    assert nearest("trainer.max_epoch", keys) == "trainer.max_epochs"
    assert nearest("modle", keys) == "model"
    assert nearest("zzz", keys) is None


def test_no_code_edits_sys_path() -> None:
    """Scripts import the installed package; none puts src/ on sys.path by hand."""
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("scripts", "src")
        for p in (ROOT / folder).rglob("*.py")
        if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()
    ]
    assert offenders == []
