"""ROC core without models: input marking and validation, the None rule, the descriptions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from groundgraph.graphs.roc.decide import NoneRule, calibrate, decide_batch, score
from groundgraph.graphs.roc.descriptions import (
    NONE_DESCRIPTION,
    build_description_index,
    check_coverage,
    describe_prompt,
    label_name_targets,
    load_descriptions,
    regenerate_descriptions,
)
from groundgraph.graphs.roc.encoding import (
    EntityTypeClassifier,
    instance_from_record,
    make_instance,
    mark_text,
    types_from_label,
)
from groundgraph.tools.embedder import HashingEmbedder
from groundgraph.tools.errors import ConfigError, InputError, ToolError
from groundgraph.tools.llm import Choice

# MNRE's relation set (mnre.relations.json of the MNRE release)
MNRE_LABELS = [
    "/loc/loc/contain",
    "/misc/loc/held_on",
    "/misc/misc/part_of",
    "/org/loc/locate_at",
    "/org/org/alternate_names",
    "/org/org/subsidiary",
    "/per/loc/place_of_birth",
    "/per/loc/place_of_residence",
    "/per/misc/awarded",
    "/per/misc/nationality",
    "/per/misc/present_in",
    "/per/misc/race",
    "/per/misc/religion",
    "/per/org/member_of",
    "/per/per/alternate_names",
    "/per/per/alumi",
    "/per/per/charges",
    "/per/per/couple",
    "/per/per/neighbor",
    "/per/per/parent",
    "/per/per/peer",
    "/per/per/siblings",
    "None",
]
TOKENS = ["RT", "@WLWT", ":", "Bill", "Cosby", "'s", "star", "on", "Hollywood", "Walk", "of", "Fame"]


def cosby() -> object:
    return make_instance(TOKENS, [3, 5], [8, 12])


# --- marking ---------------------------------------------------------------------------------


def test_mark_brackets_without_types() -> None:
    text = mark_text(cosby(), pair_suffix=False)  # type: ignore[arg-type]
    assert text == "RT @WLWT : [H] Bill Cosby [/H] 's star on [T] Hollywood Walk of Fame [/T]"


def test_mark_with_types_and_pair_suffix() -> None:
    text = mark_text(cosby(), "per", "misc")  # type: ignore[arg-type]
    assert text.startswith("RT @WLWT : [H] person : Bill Cosby [/H] 's star on [T] thing : Hollywood")
    assert text.endswith("| head: Bill Cosby (person) ; tail: Hollywood Walk of Fame (thing)")


def test_mark_tail_before_head_and_token_style() -> None:
    inst = make_instance(TOKENS, [8, 12], [3, 5])
    text = mark_text(inst, "misc", "per", style="tokens", pair_suffix=False)
    # the token style keeps one marker token each; types then only go in the suffix
    assert text == "RT @WLWT : [T] Bill Cosby [/T] 's star on [H] Hollywood Walk of Fame [/H]"


def test_mark_nested_spans_keep_well_formed_order() -> None:
    tokens = ["Sis", "Jo", "with", "Kyah", "@boyband_nielm", "!"]
    text = mark_text(make_instance(tokens, [3, 5], [3, 4]), pair_suffix=False)
    assert text == "Sis Jo with [H] [T] Kyah [/T] @boyband_nielm [/H] !"


def test_mark_none_style_is_bare_sentence() -> None:
    assert mark_text(cosby(), style="none", pair_suffix=False) == " ".join(TOKENS)  # type: ignore[arg-type]


def test_instance_from_record_reads_mnre_fields() -> None:
    rec = {
        "id": "x",
        "tokens": TOKENS,
        "head": {"name": "Bill Cosby", "pos": [3, 5]},
        "tail": {"name": "Hollywood Walk of Fame", "pos": [8, 12]},
        "relation": "None",
    }
    inst = instance_from_record(rec)
    assert (inst.head.name, inst.head.start, inst.head.end) == ("Bill Cosby", 3, 5)
    assert inst.tail.name == "Hollywood Walk of Fame"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "tail", "message"),
    [
        ([3, 5], [3, 5], "same span"),
        ([3, 13], [8, 12], "out of range"),
        ([-1, 2], [8, 12], "out of range"),
        ([5, 3], [8, 12], "out of range"),
        ([3, 3], [8, 12], "out of range"),
        ([3], [8, 12], "two integers"),
        ([3, "5"], [8, 12], "two integers"),
    ],
)
def test_bad_spans_are_input_errors(head: list[object], tail: list[object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_instance(TOKENS, head, tail)  # type: ignore[arg-type]


def test_empty_sentence_and_string_tokens_are_input_errors() -> None:
    with pytest.raises(InputError, match="empty"):
        make_instance([], [0, 1], [1, 2])
    with pytest.raises(InputError, match="list of strings"):
        make_instance("Bill Cosby", [0, 1], [1, 2])
    with pytest.raises(InputError, match="lacks"):
        instance_from_record({"tokens": TOKENS, "head": {"pos": [3, 5]}})


def test_types_from_label() -> None:
    assert types_from_label("/per/org/member_of") == ("per", "org")
    assert types_from_label("/misc/loc/held_on") == ("misc", "loc")
    assert types_from_label("None") is None


# --- None rule and scoring -------------------------------------------------------------------

LABELS = ["/per/per/peer", "/loc/loc/contain", "None"]


def test_score_counts_only_non_none_hits() -> None:
    gold = ["/per/per/peer", "None", "/loc/loc/contain", "None"]
    pred = ["/per/per/peer", "/loc/loc/contain", "None", "None"]
    m = score(gold, pred)
    assert (m.predicted_relations, m.gold_relations) == (2, 2)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(0.5) and m.accuracy == pytest.approx(0.5)


def test_none_rule_threshold_and_margin() -> None:
    sims = np.array(
        [
            [0.80, 0.10, 0.30],  # clear relation
            [0.20, 0.15, 0.10],  # below threshold
            [0.60, 0.10, 0.58],  # beats None by too little
        ]
    )
    decisions = decide_batch(sims, LABELS, NoneRule(threshold=0.5, margin=0.1))
    assert [d.label for d in decisions] == ["/per/per/peer", "None", "None"]
    assert "threshold" in decisions[1].reason and "margin" in decisions[2].reason
    assert decisions[2].best_relation == "/per/per/peer"
    # a lax rule lets every best relation through
    assert [d.label for d in decide_batch(sims, LABELS, NoneRule(threshold=-1, margin=-1))] == ["/per/per/peer"] * 3


def test_calibrate_finds_a_rule_that_beats_plain_argmax() -> None:
    rng = np.random.default_rng(0)
    gold, rows = [], []
    for i in range(200):
        if i % 3 == 0:  # a real relation: its description is clearly closest
            gold.append("/loc/loc/contain")
            rows.append([0.2, 0.7, 0.3])
        else:  # no relation, but some relation description is still nearest
            gold.append("None")
            rows.append([0.45, 0.2, 0.4])
    sims = np.asarray(rows) + rng.normal(0, 0.02, size=(200, 3))
    argmax = score(gold, [LABELS[i] for i in sims.argmax(axis=1)])
    rule, metrics = calibrate(sims, LABELS, gold)
    assert argmax.f1 < 0.6
    assert metrics.f1 == pytest.approx(1.0)
    assert [d.label for d in decide_batch(sims, LABELS, rule)] == gold


def test_decide_rejects_wrong_shapes() -> None:
    with pytest.raises(InputError):
        decide_batch(np.zeros((2, 2)), LABELS, NoneRule())
    with pytest.raises(InputError):
        score(["None"], [])


# --- descriptions ----------------------------------------------------------------------------


def test_shipped_descriptions_cover_exactly_the_mnre_labels() -> None:
    descriptions = load_descriptions(labels=MNRE_LABELS)
    assert list(descriptions) == MNRE_LABELS
    assert all(len(text.split()) >= 8 for text in descriptions.values())
    assert descriptions["None"] == NONE_DESCRIPTION
    shared = Path("/work/shared/data/mre/mnre.relations.json")
    if shared.is_file():  # the data file itself, where this checkout has it
        check_coverage(descriptions, json.loads(shared.read_text()))


def test_coverage_errors_name_missing_and_extra(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing \['/per/per/peer'\].*extra \['/x/y/z'\]"):
        check_coverage({"None": "n", "/x/y/z": "x"}, ["None", "/per/per/peer"])
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps({"None": " "}))
    with pytest.raises(ConfigError, match="empty description"):
        load_descriptions(bad)


def test_description_index_returns_labels() -> None:
    targets = load_descriptions()
    index = build_description_index(targets, HashingEmbedder())
    assert len(index) == len(MNRE_LABELS)
    query = HashingEmbedder().embed([targets["/per/per/siblings"]])
    assert index.search(query, k=1)[0][0][0] == "/per/per/siblings"
    assert label_name_targets(["/per/org/member_of"]) == {"/per/org/member_of": "per org member of"}


class FakeLLM:
    name = "llm.fake"

    def __init__(self, reply: str) -> None:
        self.reply, self.prompts = reply, []  # type: ignore[var-annotated]

    def choose(self, prompt: str, options: list[str], *, calibration_prompt: str | None = None) -> Choice:
        raise AssertionError("not used")

    def generate(
        self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        self.prompts.append(prompt)
        return self.reply


def test_regenerate_descriptions_uses_the_prompt_and_examples() -> None:
    rec = {
        "tokens": TOKENS,
        "head": {"name": "Bill Cosby", "pos": [3, 5]},
        "tail": {"name": "Hollywood Walk of Fame", "pos": [8, 12]},
        "relation": "/per/misc/present_in",
    }
    llm = FakeLLM('  "Appears in: the head person appears in the tail work."\n\nSecond definition')
    out = regenerate_descriptions(llm, ["/per/misc/present_in", "None"], [rec])
    assert out == {
        "/per/misc/present_in": "Appears in: the head person appears in the tail work.",
        "None": NONE_DESCRIPTION,
    }
    assert len(llm.prompts) == 1  # None is fixed, never generated
    assert "Head type: person" in llm.prompts[0] and "Tail type: thing" in llm.prompts[0]
    assert "[H] Bill Cosby [/H]" in llm.prompts[0]
    with pytest.raises(ToolError):
        regenerate_descriptions(FakeLLM(""), ["/per/misc/present_in"], [rec])
    with pytest.raises(InputError):
        describe_prompt("None", [])


# --- entity types ----------------------------------------------------------------------------


def test_type_classifier_fits_separable_features_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centers = np.eye(4, 8) * 3
    types = ["per", "org", "loc", "misc"] * 25
    x = np.stack([centers[["per", "org", "loc", "misc"].index(t)] for t in types]) + rng.normal(0, 0.3, (100, 8))
    clf = EntityTypeClassifier.fit(x, types)  # type: ignore[arg-type]
    assert clf.predict(x) == types
    clf.save(tmp_path / "types.json")
    again = EntityTypeClassifier.load(tmp_path / "types.json")
    np.testing.assert_allclose(again.predict_proba(x), clf.predict_proba(x), rtol=1e-5)
    with pytest.raises(InputError):
        EntityTypeClassifier.fit(x[:3], types[:2])  # type: ignore[arg-type]
