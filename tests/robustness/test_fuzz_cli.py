"""The command line, in process through its console entry point (``cli.main``) with agents on fake tools:
>= 1000 generated command lines over ``run i2cr|roc|enriched_caption|insgenel`` and ``trace show``, with
hostile option values, candidate and JSONL files (broken, not JSON objects, directories, missing), output
paths that cannot be written, unknown options and stray arguments.

A case passes when the command exits 0, or exits 2 with a one-line message (a usage error, or
``error: <GroundgraphError type>: ...``) and no traceback. stdout and stderr are strict UTF-8 streams,
as on a UTF-8 terminal or pipe; argv holds only what a POSIX argv can (no NUL; undecodable bytes as
surrogate escapes).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from fake_agent import CANDIDATES
from hypothesis import given
from hypothesis import strategies as st
from robust_agents import caption_agent, i2cr_agent, insgenel_agent, roc_agent
from robust_helpers import FUZZ, Tally, make_image_zoo, text_values

from groundgraph.agents import agent as agent_module
from groundgraph.agents import cli

pytestmark = pytest.mark.robustness


def argv_safe(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


arg_text = text_values.filter(lambda t: argv_safe(t) and len(t) < 30_000)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cli")
    zoo = make_image_zoo(root / "zoo")
    f: dict[str, Path] = {}

    def write(name: str, text: str | bytes) -> Path:
        f[name] = root / name
        if isinstance(text, bytes):
            f[name].write_bytes(text)
        else:
            f[name].write_text(text, encoding="utf-8")
        return f[name]

    write("candidates.json", json.dumps(CANDIDATES))
    write("candidates_broken.json", '[{"id": "Q1", "name": ')
    write("candidates_object.json", json.dumps({"id": "Q1"}))
    write("candidates_junk.json", json.dumps([1, None, "x", {"id": ""}]))
    write("candidates_markup.json", json.dumps([{"id": "[/]", "name": "[bold]Baker[/bold] [/]"}]))
    records = [{"id": "a", "mention": "Carroll Baker", "candidates": CANDIDATES},
               {"id": "b", "text": "Alice plays for Ajax since 2019", "head": {"name": "Alice"},
                "tail": {"name": "Ajax"}},
               {"id": "c", "image": zoo["ok.png"]}, {"id": "d", "text": "Steve Jobs founded Apple."}]
    write("records.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    write("records_mixed.jsonl", json.dumps(records[0]) + "\nnot json\n[1, 2]\n\"text\"\n{\"id\": 5}\n"
          + json.dumps({"id": "big", "mention": "x" * 5000}) + "\n")
    write("records_binary.jsonl", bytes(range(256)) * 4)
    write("empty.jsonl", "")
    torn = write("torn_output.jsonl", json.dumps({"id": "a", "entity": None}) + "\n{\"id\": \"b\", \"ent")
    f["dir"] = root / "a_directory"
    f["dir"].mkdir()
    paths = {k: str(v) for k, v in f.items()}
    paths.update({"missing": str(root / "missing.json"), "unwritable": "/proc/groundgraph/out.jsonl",
                  "nested_new": str(root / "new" / "deeper" / "out.jsonl")})
    return {"root": root, "zoo": zoo, "paths": paths, "torn": torn}


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli_agents")
    return {"i2cr": i2cr_agent(tmp / "i2cr.sqlite"), "roc": roc_agent(tmp), "enriched_caption": caption_agent(tmp),
            "insgenel": insgenel_agent(tmp)}


def command_lines(files: dict[str, Any]) -> st.SearchStrategy[list[str]]:
    paths, zoo = files["paths"], files["zoo"]
    path_values = st.sampled_from(sorted(paths.values()) + sorted(zoo.values())) | arg_text
    in_files = st.sampled_from([paths[k] for k in ("records.jsonl", "records_mixed.jsonl", "records_binary.jsonl",
                                                   "empty.jsonl", "dir", "missing", "candidates.json")])
    out_files = st.sampled_from(["{fresh}", "{fresh}", paths["dir"], paths["unwritable"], paths["nested_new"],
                                 "{torn}"])
    image = st.sampled_from(sorted(zoo.values())) | arg_text
    io_files = {"--input": in_files, "--output": out_files}
    options = {
        "run i2cr": {"--mention": st.sampled_from(["Carroll Baker", "Baker"]) | arg_text, "--context": arg_text,
                     "--image": image, "--candidates": st.sampled_from(
                         [paths[k] for k in ("candidates.json", "candidates_broken.json", "candidates_object.json",
                                             "candidates_junk.json", "candidates_markup.json", "dir", "missing")])
                     | st.just("{generated}"), **io_files},
        "run roc": {"--text": st.sampled_from(["Alice plays for Ajax since 2019"]) | arg_text,
                    "--tokens-json": st.sampled_from(['["Alice", "plays", "for", "Ajax"]', "[broken", "{}", "[1, 2]",
                                                      "null"]) | arg_text,
                    "--head": st.sampled_from(["Alice", "[/]"]) | arg_text,
                    "--tail": st.sampled_from(["Ajax", "[bold]"]) | arg_text,
                    "--head-pos": st.sampled_from(["0,5", "0:1", "5,0", "-1,3", "0,99999999999999999999", "x"])
                    | arg_text,
                    "--tail-pos": st.sampled_from(["16,20", "3,4", "16,200", ","]) | arg_text,
                    "--head-type": st.sampled_from(["per", "org", "alien"]) | arg_text,
                    "--tail-type": st.sampled_from(["org", "loc"]) | arg_text, "--image": image, **io_files},
        "run enriched_caption": {"--image": image, **io_files},
        "run insgenel": {"--text": st.sampled_from(["Steve Jobs founded Apple with Steve Wozniak."]) | arg_text,
                         "--kb": path_values, "--no-llm": st.none(), **io_files},
        "trace show": {"--db": st.sampled_from(["{fresh}", paths["dir"], paths["candidates.json"]])},
    }
    #: a valid invocation of each command; generated options are added to it (a repeated option's last value wins)
    valid = {
        "run i2cr": st.sampled_from([["--mention", "Carroll Baker", "--candidates", paths["candidates.json"]],
                                     ["--mention", "Baker", "--context", "in the swing scene"],
                                     ["--input", paths["records.jsonl"], "--output", "{fresh}"]]),
        "run roc": st.sampled_from([["--text", "Alice plays for Ajax since 2019", "--head", "Alice", "--tail", "Ajax"],
                                    ["--tokens-json", '["Alice", "plays", "for", "Ajax"]', "--head-pos", "0,1",
                                     "--tail-pos", "3,4"],
                                    ["--input", paths["records.jsonl"], "--output", "{fresh}"]]),
        "run enriched_caption": st.sampled_from([["--image", zoo["ok.png"]], ["--image", zoo["ok.jpg"]],
                                                 ["--input", paths["records.jsonl"], "--output", "{fresh}"]]),
        "run insgenel": st.sampled_from([["--text", "Steve Jobs founded Apple with Steve Wozniak."],
                                         ["--input", paths["records.jsonl"], "--output", "{fresh}"]]),
        "trace show": st.sampled_from([["{run_id}"], ["{run_id}", "--json"]]),
    }

    @st.composite
    def build(draw: Any) -> list[str]:
        command = draw(st.sampled_from(sorted(options)))
        argv = [*command.split(), *draw(valid[command])]
        if command == "trace show" and draw(st.booleans()):
            argv[2] = draw(st.sampled_from(["no-such-run", "", "[/]"]) | arg_text)
        if draw(st.booleans()):
            argv.append("--json")
        names = draw(st.lists(st.sampled_from(sorted(options[command])), max_size=3, unique=True))
        for name in names:
            value = draw(options[command][name])
            argv.append(name)
            if value is not None:
                argv.append(value)
        if draw(st.integers(0, 9)) == 0:
            junk = draw(st.sampled_from(["--bogus-option", "-x", "--"]) | arg_text)
            argv.insert(draw(st.integers(0, len(argv))), junk)  # a stray argument or unknown option anywhere
        return argv

    return build()


def run_main(argv: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    """``groundgraph ARGV`` in process: (exit code, stdout, stderr, exception that escaped main)."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.argv, sys.stdout, sys.stderr
    sys.argv = ["groundgraph", *argv]
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="strict", write_through=True)
    code: int | None = None
    escaped: BaseException | None = None
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - what escapes is the crash we count
        escaped = exc
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            stream.detach()  # keep the byte buffers open when the wrappers go
        sys.argv, sys.stdout, sys.stderr = saved
    return code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace"), escaped


def test_cli_fuzz(files: dict[str, Any], agents: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDGRAPH_HOME", str(files["root"] / "home"))
    monkeypatch.setattr(agent_module, "load_agent", lambda graph, *a, **k: agents[graph])
    # the click command typer builds on every ``app()`` call, built once (typer's own ``__call__`` does just this)
    command = typer.main.get_command(cli.app)
    monkeypatch.setattr(cli, "app", lambda: command.main(prog_name="groundgraph"))
    stored = i2cr_agent(files["root"] / "home" / "traces.sqlite", trace=True)  # where `trace show` looks
    run_id = stored.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES}).run_id
    monkeypatch.setenv("COLUMNS", "200")
    tally = Tally("cli")
    counter = iter(range(10**9))

    @FUZZ
    @given(argv=command_lines(files),
           generated=st.lists(st.fixed_dictionaries({"id": arg_text, "name": arg_text}), min_size=1, max_size=3))
    def case(argv: list[str], generated: list[dict[str, str]]) -> None:
        n = next(counter)
        fresh = files["root"] / f"case{n}"
        gen = files["root"] / f"generated{n}.json"
        gen.write_text(json.dumps(generated, ensure_ascii=True))
        files["torn"].write_text(json.dumps({"id": "a", "entity": None}) + "\n{\"id\": \"b\", \"ent")
        argv = [a.replace("{fresh}", str(fresh)).replace("{generated}", str(gen)).replace("{torn}", str(files["torn"]))
                .replace("{run_id}", run_id) for a in argv]
        code, out, err, escaped = run_main(argv)
        if escaped is not None:
            tally.crash(f"{argv!r}: {type(escaped).__name__}: {str(escaped)[:200]}")
        elif "Traceback" in out + err:
            tally.crash(f"{argv!r}: a traceback was printed: {err[-300:]}")
        elif code == 0:
            tally.ok += 1
        elif code == 2 and err.strip():
            kind = "usage error" if "Usage:" in err or "No such option" in err else err.split(":")[1].strip()
            tally.typed_errors += 1
            tally.error_types[kind] = tally.error_types.get(kind, 0) + 1
        else:
            tally.crash(f"{argv!r}: exit code {code}, stderr {err[-300:]!r}")

    case()
    tally.assert_clean()
