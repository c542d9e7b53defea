"""The roc graph with fake tools: input resolution, each node, the None rule, image and type handling,
config errors at the boundary, and the CLI's one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image
from roc_fakes import COUPLE, DESCRIPTIONS, MEMBER, NONE, FakeEncoder, FakeImageText, FakeTypes, make_ctx

from groundgraph.agents.agent import Agent
from groundgraph.agents.settings import load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.graphs.roc import SPEC
from groundgraph.graphs.roc.config import RocConfig
from groundgraph.graphs.roc.context import make_context
from groundgraph.graphs.roc.graph import build, initial_state, run_plain
from groundgraph.graphs.roc.state import RocInput, find_tokens
from groundgraph.tools.errors import ConfigError, InputError

SENTENCE = {"text": "Alice plays for Ajax since 2019", "head": {"name": "Alice"}, "tail": {"name": "Ajax"}}


def agent_with(ctx: Any, tmp_path: Path) -> Agent:
    settings = load_settings("cpu", trace={"db": str(tmp_path / "traces.sqlite")})
    return Agent(SPEC, settings, toolbox=Toolbox({"embedder": {"backend": "hashing"}}), context=ctx, trace=True)


@pytest.fixture()
def agent(tmp_path: Path) -> Agent:
    return agent_with(make_ctx(tmp_path), tmp_path)


# --- input ------------------------------------------------------------------------------------------
def test_text_with_names_becomes_tokens_and_token_spans() -> None:
    inp = RocInput.model_validate({"text": "Bill Cosby's star on the Hollywood Walk of Fame.",
                                   "head": {"name": "Bill Cosby"}, "tail": {"name": "Hollywood Walk of Fame"}})
    assert inp.tokens == ["Bill", "Cosby", "'s", "star", "on", "the", "Hollywood", "Walk", "of", "Fame", "."]
    assert (inp.head.pos, inp.tail.pos) == ([0, 2], [6, 10])


def test_character_offsets_pick_one_occurrence_and_force_token_boundaries() -> None:
    text = "Kim met Kim Jong Un in Hanoi"
    inp = RocInput.model_validate({"text": text, "head": {"pos": [8, 19]}, "tail": {"pos": [0, 3], "type": "per"}})
    assert inp.tokens is not None and inp.head.pos is not None
    assert inp.head.name == "Kim Jong Un" and inp.tokens[inp.head.pos[0]:inp.head.pos[1]] == ["Kim", "Jong", "Un"]
    assert inp.tail.pos == [0, 1] and inp.tail.type == "per"
    # an offset inside a word still yields whole tokens at the entity's edges
    cut = RocInput.model_validate({"text": "the #Lakers game", "head": {"pos": [5, 11]}, "tail": {"name": "game"}})
    assert cut.tokens == ["the", "#", "Lakers", "game"] and cut.head.name == "Lakers"


def test_same_name_twice_gives_the_tail_the_other_occurrence() -> None:
    inp = RocInput.model_validate({"text": "Paris Hilton visits Paris", "head": {"pos": [0, 5]},
                                   "tail": {"name": "Paris"}})
    assert (inp.head.pos, inp.tail.pos) == ([0, 1], [3, 4])


def test_tokens_with_names_or_positions() -> None:
    tokens = ["RT", "@AFP", ":", "UN", "says", "ceasefire", "in", "Libya"]
    by_name = RocInput.model_validate({"tokens": tokens, "head": {"name": "UN"}, "tail": {"name": "Libya"}})
    by_pos = RocInput.model_validate({"tokens": tokens, "head": {"pos": [3, 4]}, "tail": {"pos": [7, 8]}})
    assert by_name.head.pos == by_pos.head.pos == [3, 4] and by_pos.tail.name == "Libya"
    assert find_tokens(["New", "York", "Knicks"], "New York") == [0, 2]


@pytest.mark.parametrize(("record", "message"), [
    ({"tokens": ["a", "b"], "head": {"pos": [0, 1]}, "tail": {"pos": [1, 5]}}, "tail span [1, 5) is out of range"),
    ({"tokens": ["a", "b"], "head": {"pos": [0, 1]}, "tail": {"pos": [0, 1]}}, "head and tail are the same span"),
    ({"text": "Messi joins Inter", "head": {"name": "Messi"}, "tail": {"name": "Messi"}}, "the same span"),
    ({"text": "Messi joins Inter", "head": {"name": "Messi"}, "tail": {"name": "Barca"}}, "'Barca' does not occur"),
    ({"text": "Messi joins Inter", "head": {"pos": [0, 99]}, "tail": {"name": "Inter"}}, "out of range"),
    ({"head": {"name": "a"}, "tail": {"name": "b"}}, "give either tokens or text"),
    ({"text": "a b", "head": {}, "tail": {"name": "b"}}, "give the entity's name or its pos"),
])
def test_bad_input_is_an_input_error_at_the_boundary(agent: Agent, record: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match="invalid roc input") as err:
        agent.invoke(record)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_image_file_is_an_input_error(agent: Agent) -> None:
    with pytest.raises(InputError, match="image file not found"):
        agent.invoke({**SENTENCE, "image": "twitter_stream_2018_05_07_7_0_2_117.jpg"})


# --- the graph -------------------------------------------------------------------------------------
def test_relation_is_retrieved_with_scores_gates_and_trace(agent: Agent) -> None:
    out = agent.invoke({**SENTENCE, "id": "r1"})
    assert out.relation == MEMBER and out.decided_by == "retrieval" and out.id == "r1"
    assert set(out.scores) == set(DESCRIPTIONS) and out.score == pytest.approx(out.scores[MEMBER])
    assert [t.relation for t in out.top_k] == [MEMBER, COUPLE]  # None is never in top_k
    assert out.top_k[0].description == DESCRIPTIONS[MEMBER]
    assert out.none_score == pytest.approx(out.scores[NONE])
    assert [(g.gate, g.passed, g.threshold) for g in out.gates] == [("threshold", True, 0.5), ("margin", True, 0.2)]
    assert out.marked_text == "[H] Alice [/H] plays for [T] Ajax [/T] since 2019 | head: Alice ; tail: Ajax"
    assert not out.image_used and out.image_note == "no image in the input: text only"
    assert out.encoder.startswith("zero-shot embedder.fake")
    events = agent.trace(out.run_id)
    assert [e.node for e in events] == ["encode", "retrieve", "decide", "fuse"]
    assert events[2].decision == MEMBER and events[2].scores["margin"]["passed"] is True
    assert events[0].tool_calls[0]["what"] == "embed pair"


def test_none_rule_overrules_retrieval(agent: Agent) -> None:
    out = agent.invoke({"text": "Alice and Bob watched the game", "head": {"name": "Alice"}, "tail": {"name": "Bob"}})
    assert out.relation == NONE and out.decided_by == "none_rule"
    assert out.score == pytest.approx(out.scores[NONE])
    assert out.gates[0].passed is False and "< threshold" in out.reason


def test_margin_gate_alone_can_say_none(tmp_path: Path) -> None:
    from groundgraph.graphs.roc.decide import NoneRule

    ctx = make_ctx(tmp_path, none_rule=NoneRule(threshold=0.0, margin=0.9))
    out = agent_with(ctx, tmp_path).invoke(SENTENCE)
    assert out.relation == NONE and [g.passed for g in out.gates] == [True, False]


def test_plain_loop_and_langgraph_agree(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    state = initial_state(RocInput.model_validate(SENTENCE), ctx.config)
    plain = run_plain(state, ctx)
    graph = build().compile(checkpointer=InMemorySaver())
    final = graph.invoke(state, config={"configurable": {"thread_id": "t"}}, context=ctx)
    assert plain["result"] == final["result"]
    assert [e["node"] for e in plain["trace"]] == ["encode", "retrieve", "decide", "fuse"]


def test_label_names_ablation_retrieves_over_names(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, targets="label_names")
    assert ctx.targets[MEMBER] == "per org member of" and ctx.targets[NONE] == "no relation"
    out = agent_with(ctx, tmp_path).invoke(SENTENCE)
    assert out.targets == "label_names" and out.relation == MEMBER


# --- image ------------------------------------------------------------------------------------------
@pytest.fixture()
def image(tmp_path: Path) -> str:
    path = tmp_path / "post.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path)
    return str(path)


def test_image_without_an_image_text_model_is_not_used_and_the_trace_says_why(tmp_path: Path, image: str) -> None:
    proxy = FakeImageText({}, scale="proxy_text_100cos")
    out = agent_with(make_ctx(tmp_path, tools={"image_text": proxy}, image_weight=1.0), tmp_path).invoke(
        {**SENTENCE, "image": image})
    assert not out.image_used and "not an image-text model's scale" in out.image_note and proxy.calls == 0
    none = agent_with(make_ctx(tmp_path), tmp_path).invoke({**SENTENCE, "image": image})
    assert "no image_text tool" in none.image_note


def test_image_is_fused_on_clip_scale_when_weighted(tmp_path: Path, image: str) -> None:
    clip = FakeImageText({DESCRIPTIONS[COUPLE]: 100.0})
    off = agent_with(make_ctx(tmp_path, tools={"image_text": clip}), tmp_path).invoke({**SENTENCE, "image": image})
    assert not off.image_used and "image_weight is 0" in off.image_note and clip.calls == 0
    ctx = make_ctx(tmp_path, tools={"image_text": clip}, image_weight=0.5)
    on = agent_with(ctx, tmp_path).invoke({**SENTENCE, "image": image})
    assert on.image_used and clip.calls == 1
    assert on.scores[COUPLE] == pytest.approx(off.scores[COUPLE] + 0.5)
    assert on.scores[MEMBER] == pytest.approx(off.scores[MEMBER])


# --- types ------------------------------------------------------------------------------------------
def test_types_are_predicted_when_absent_and_taken_from_the_input_when_given(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.use_types, ctx.type_classifier = True, FakeTypes()  # type: ignore[assignment]
    agent = agent_with(ctx, tmp_path)
    out = agent.invoke({**SENTENCE, "tail": {"name": "Ajax", "type": "org"}, "head": {"name": "Alice"}})
    assert (out.head.type, out.head.type_source) == ("per", "predicted")
    assert (out.tail.type, out.tail.type_source) == ("org", "input")
    assert "[H] person : Alice [/H]" in out.marked_text and "tail: Ajax (organization)" in out.marked_text
    plain = agent_with(make_ctx(tmp_path), tmp_path).invoke({**SENTENCE, "head": {"name": "Alice", "type": "per"}})
    assert plain.head.type_source == "unused" and "person" not in plain.marked_text


def test_use_types_loads_the_shipped_classifier_and_checks_its_features(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="type classifier expects 384-d features"):
        make_ctx(tmp_path, use_types=True)  # the fake embedder is 8-d; the shipped classifier reads MiniLM


# --- config errors ----------------------------------------------------------------------------------
def test_unknown_relation_set_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown relation set 'tacred'"):
        make_context({"embedder": FakeEncoder()}, RocConfig(encoder="embedder", relation_set="tacred"))


def test_shipped_relation_set_is_the_default(tmp_path: Path) -> None:
    ctx = make_context({"embedder": FakeEncoder()}, RocConfig(encoder="embedder"))
    assert len(ctx.labels) == 23 and NONE in ctx.labels and ctx.rule_source == "zero-shot default"


def test_descriptions_without_none_are_a_config_error(tmp_path: Path) -> None:
    from roc_fakes import descriptions_file

    path = descriptions_file(tmp_path, {MEMBER: "plays for a team"})
    with pytest.raises(ConfigError, match="no 'None' label"):
        make_context({"embedder": FakeEncoder()}, RocConfig(encoder="embedder", descriptions=path))


def test_encoder_path_that_is_not_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        make_context({"embedder": FakeEncoder()}, RocConfig(encoder=str(tmp_path / "nope")))


def test_zero_shot_without_an_embedder_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no models/roc-mnre here: "auto" falls back to the profile's embedder
    with pytest.raises(ConfigError, match="no 'embedder' tool"):
        make_context({}, RocConfig())


def test_bad_config_values_are_refused() -> None:
    with pytest.raises(ValueError):
        RocConfig(targets="names")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RocConfig(top_k=0)


# --- CLI --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--tokens-json", '["a", "b"]', "--head-pos", "0,1", "--tail-pos", "1,5"],
    ["--text", "Messi joins Inter", "--head", "Messi", "--tail", "Messi"],
    ["--text", "Messi joins Inter", "--head", "Messi", "--tail-pos", "x"],
    ["--tokens-json", "[broken", "--head", "a", "--tail", "b"],
])
def test_cli_bad_input_exits_2_with_one_line(args: list[str], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from groundgraph.agents import cli

    monkeypatch.setenv("GROUNDGRAPH_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["groundgraph", "run", "roc", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: InputError") and "Traceback" not in "".join(lines)


def test_answer_is_json_native(agent: Agent) -> None:
    out = agent.invoke(SENTENCE)
    assert json.loads(out.model_dump_json())["relation"] == MEMBER
