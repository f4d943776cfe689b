import json

from click.testing import CliRunner

from mmeval.finetune.commands import finetune_command
from tests.finetune.helpers import eight_samples


def test_help_and_print_recipe():
    r = CliRunner().invoke(finetune_command, ["--help"])
    assert r.exit_code == 0 and "Examples" in r.output and "--strategy" in r.output
    r = CliRunner().invoke(finetune_command, ["--model", "cobra", "--stage", "finetune", "--data", __file__,
                                              "--set", "learning_rate=1e-4,epochs=3", "--print-recipe"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["learning_rate"] == 1e-4 and d["epochs"] == 3 and d["stage"] == "instruct"
    r = CliRunner().invoke(finetune_command, ["--model", "cobra", "--stage", "align", "--data", __file__,
                                              "--set", "bogus=1", "--print-recipe"])
    assert r.exit_code != 0 and "unknown recipe field" in r.output
    # VL-Mamba's numbers say where they come from: LLaVA-1.5's scripts, not the paper
    r = CliRunner().invoke(finetune_command, ["--model", "vl-mamba", "--stage", "align", "--data", __file__,
                                              "--set", "epochs=2", "--print-recipe"])
    d = json.loads(r.output)
    assert d["sources"]["learning_rate"].startswith("LLaVA-1.5 scripts/v1_5/pretrain.sh --learning_rate 1e-3")
    assert d["sources"]["epochs"] == "--set epochs=2" and "not the VL-Mamba paper" in d["source"]


def test_tiny_run_from_the_command_line(tmp_path):
    data = eight_samples(tmp_path)
    r = CliRunner().invoke(finetune_command, [
        "--model", "cobra", "--stage", "align", "--data", str(data), "--images", str(tmp_path), "--tiny",
        "--max-steps", "2", "--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress",
        "--set", "global_batch_size=4,per_device_batch_size=2,num_workers=0"])
    assert r.exit_code == 0, r.output
    assert "step 2/2" in r.output
    assert (tmp_path / "out" / "checkpoints" / "latest-checkpoint.pt").is_file()
    lines = (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()
    # Cobra align: peak lr 1e-3, warmup int(0.03 * 2) = 0 steps, then cosine: 1e-3, 5e-4
    assert [json.loads(x)["lr"] for x in lines] == [1e-3, 5e-4]
