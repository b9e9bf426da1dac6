"""A chat model that wraps every reply: the dataset still comes out clean.

The residue check here is the test's own, not the filter's: every record must be exactly an
(input, output) the chatty server meant, and no field may hold any wrapping it used."""

from __future__ import annotations

from collections import Counter

from tests.chatty import Chatty, residue
from tests.pooldata import MakeServer, invoke, lines, write_seeds


def test_a_chatty_model_gives_a_clean_dataset(make_server: MakeServer) -> None:
    chatty = Chatty(label_only=0.3)  # so that a 40-task run surely has some
    server = make_server(reply=chatty)
    write_seeds()
    result = invoke(server, "run", "--seeds", "seeds.jsonl", "-n", "40", "--quiet")
    assert result.exit_code == 0, result.output
    dataset = lines("data/dataset.jsonl")
    assert len(dataset) >= 60
    assert [r for r in dataset if residue(r)] == []
    assert [r for r in dataset if (r["input"], r["output"]) not in chatty.payloads] == []
    # Every reply held instances, and every one of them was read.
    sets = lines("data/instances.jsonl")
    assert len(sets) == 40 and all(s["instances"] for s in sets)
    assert all((i["input"], i["output"]) in chatty.payloads for s in sets for i in s["instances"])
    # Label-only instances and empty inputs are kept, as the method keeps them.
    assert 0 < sum(not r["input"] for r in dataset) < len(dataset)
    assert any(r["is_classification"] and not r["input"] for r in dataset)
    rules = Counter(r["rule"] for r in lines("data/filter_rejects.jsonl"))
    assert rules["chat_residue"] == 0 and rules["no_instances"] == 0
