"""`audiolm bench prompts` runs on a tiny pipeline: prompts of three lengths, one batch vs one by
one, the same tokens both ways."""

from __future__ import annotations

import json

from audiolm.cli.app import main


def test_bench_prompts_json_and_table(tiny_pipeline, capsys):
    args = ["bench", "prompts", "--pipeline", str(tiny_pipeline), "--prompt-seconds", "0.3,0.5,0.7", "--seconds", "0.2"]
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)["result"]
    assert r["pipeline"] == "tiny" and r["device"] == "cpu" and r["seconds"] == 0.2
    assert len(r["prompt_seconds"]) == 3 and r["equal"] is True
    assert r["batched_s"] > 0 and r["one_by_one_s"] > 0 and r["speedup"] > 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "one batch" in out and "same tokens both ways: yes" in out


def test_bench_prompts_errors(tiny_pipeline, capsys):
    for bad, message in ((["--prompt-seconds", "1,x"], "comma-separated numbers"), (["--seconds", "0"], "positive")):
        code = main(["bench", "prompts", "--pipeline", str(tiny_pipeline), *bad])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
