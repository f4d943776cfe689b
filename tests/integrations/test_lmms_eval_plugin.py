"""mmeval's adapters as lmms-eval models (mmeval/integrations/lmms_eval_models.py).

lmms-eval discovers them through the `lmms_eval.models` entry-point group. The tests declare that
entry point in a throw-away dist-info directory on the path (what `pip install mmeval` writes from
pyproject.toml), so they do not depend on how mmeval is installed.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lmms_eval.api.instance import Instance

from mmeval.types import GenerationConfig, Request

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = "mmeval = mmeval.integrations.lmms_eval_models:lmms_eval_manifests"
NAMES = ("vl_mamba", "cobra", "mmeval_mock", "mmeval")


def _plugin_dist(root: Path) -> Path:
    """A minimal installed-distribution record declaring mmeval's lmms_eval.models entry point."""
    dist = root / "mmeval_lmms_plugin_test-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmeval-lmms-plugin-test\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[lmms_eval.models]\n{ENTRY_POINT}\n")
    return root


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """lmms-eval's model registry after loading the entry point (as it does at import)."""
    import importlib

    import lmms_eval.models as models

    monkeypatch.syspath_prepend(str(_plugin_dist(tmp_path / "site")))
    importlib.invalidate_caches()
    models.MODEL_REGISTRY_V2.load_entrypoint_manifests(overwrite=True)
    return models


def _image(color=(10, 200, 30), size=(32, 24)):
    from PIL import Image

    return Image.new("RGB", size, color)


def _instances(request_type, args_list, task="tiny_task", split="test"):
    """Instances laid out as lmms-eval's ConfigurableTask.construct_requests builds them."""
    return [Instance(request_type=request_type, arguments=(*args, task, split), idx=0,
                     metadata={"task": task, "doc_id": args[3], "repeats": 1}) for args in args_list]


def _doc_to_visual(doc):
    return [doc["image"]]


def test_entry_point_lists_models_at_import(tmp_path):
    """A fresh interpreter: `import lmms_eval.models` picks the plugin up by itself."""
    site = _plugin_dist(tmp_path / "site")
    code = textwrap.dedent("""
        import lmms_eval.models as m
        names = set(m.list_available_models(include_aliases=True))
        assert {"vl_mamba", "vl-mamba", "cobra", "mmeval_mock", "mmeval"} <= names, sorted(names)
        assert m.AVAILABLE_MODELS["vl_mamba"] == "VLMambaLMM"
        assert m.get_model("cobra").__name__ == "CobraLMM"
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr


def test_registry_resolves_names(registered):
    from lmms_eval.api.model import lmms

    for name in NAMES:
        cls = registered.get_model(name)
        assert issubclass(cls, lmms) and cls.is_simple
    assert registered.get_model("vl-mamba") is registered.get_model("vl_mamba")


def test_mock_generate_until_matches_adapter(registered):
    from mmeval.integrations.lmms_eval_models import image_ref_from_pil
    from model_adapters.mock import MockAdapter

    lm = registered.get_model("mmeval_mock").create_from_arg_string("seed=7", {"batch_size": 2, "device": "cpu"})
    same = _image()
    docs = [{"image": same.copy(), "q": "Is there a cat in the image?"},
            {"image": _image((200, 0, 0)), "q": "What color is it?"},
            {"image": same.copy(), "q": "<image>\nIs there a dog in the image?"}]
    lm.task_dict = {"tiny_task": {"test": docs}}
    gen_kwargs = {"until": ["\n\n"], "max_new_tokens": 16, "temperature": 0}
    requests = _instances("generate_until", [(d["q"], dict(gen_kwargs), _doc_to_visual, i) for i, d in enumerate(docs)])

    got = lm.generate_until(requests)

    own = MockAdapter.from_args({"seed": "7"})
    expected = [own.generate([Request(doc_id=str(i), prompt=d["q"].replace("<image>", "").strip(),
                                      images=(image_ref_from_pil(d["image"]),),
                                      generation=GenerationConfig(max_new_tokens=16, stop=("\n\n",)))])[0].text
                for i, d in enumerate(docs)]
    assert got == expected and all(got)
    # questions on equal pixels (different PIL objects) share a group key: the adapter's prefix reuse
    built = [
        lm._request(d["q"], _doc_to_visual, i, "tiny_task", "test", GenerationConfig()) for i, d in enumerate(docs)
    ]
    assert built[0].group_key == built[2].group_key != built[1].group_key
    assert built[2].prompt == "Is there a dog in the image?"


def test_mock_loglikelihood(registered):
    from mmeval.integrations.lmms_eval_models import image_ref_from_pil
    from model_adapters.mock import MockAdapter

    lm = registered.get_model("mmeval_mock").create_from_arg_string("", {"batch_size": 4, "device": "cpu"})
    docs = [{"image": _image(), "q": "Is there a cat?"}, {"image": _image((0, 0, 9)), "q": "Is there a car?"}]
    lm.task_dict = {"tiny_task": {"test": docs}}
    requests = _instances("loglikelihood", [(d["q"], c, _doc_to_visual, i) for i, d in enumerate(docs)
                                            for c in (" Yes", " No")])
    got = lm.loglikelihood(requests)
    own = MockAdapter.from_args({})
    for i, d in enumerate(docs):
        probs = own.answer_probabilities(
            [Request(doc_id=str(i), prompt=d["q"], images=(image_ref_from_pil(d["image"]),))], ["Yes", "No"]
        )[0]
        for j, c in enumerate(("Yes", "No")):
            ll, greedy = got[2 * i + j]
            assert ll == pytest.approx(math.log(probs[c]))
            assert greedy == (probs[c] == max(probs.values()))

    multi = _instances("loglikelihood", [(docs[0]["q"], " yes it is", _doc_to_visual, 0)])
    with pytest.raises(NotImplementedError, match="single-token"):
        lm.loglikelihood(multi)
    with pytest.raises(NotImplementedError, match="single-turn"):
        lm.generate_until_multi_round([])


def test_model_args_reach_the_adapter(registered):
    from mmeval.errors import UnknownNameError

    with pytest.warns(UserWarning, match="no automatic batch size; using batch_size=3"):
        lm = registered.get_model("mmeval").create_from_arg_string("adapter=mock,seed=007,answers=Yes|No",
                                                                   {"batch_size": "auto", "max_batch_size": 3})
    assert lm.adapter.seed == 7 and lm.adapter.answers == ("Yes", "No") and lm.batch_size == 3
    with pytest.raises(UnknownNameError, match="pretrained"):
        registered.get_model("mmeval_mock").create_from_arg_string("pretrained=x", {})


def _tiny_roundtrip(registered, name):
    lm = registered.get_model(name).create_from_arg_string("tiny=1", {"batch_size": 2, "device": "cpu"})
    # two questions on one image (as POPE asks them): one batch, the image's prefix state shared
    docs = [{"image": _image(), "q": "Is there a cat?"}, {"image": _image(), "q": "Is there a dog?"}]
    lm.task_dict = {"tiny_task": {"test": docs}}
    gen_kwargs = {"until": ["\n"], "max_new_tokens": 3}
    got = lm.generate_until(_instances("generate_until", [(d["q"], dict(gen_kwargs), _doc_to_visual, i)
                                                          for i, d in enumerate(docs)]))
    states = getattr(getattr(lm.adapter, "runtime", None), "_states", None)
    if states is not None:  # mmeval's VLMRuntime: one cached prefix state for the shared image
        assert len(states) == 1
    from mmeval.integrations.lmms_eval_models import cut_at_stop, image_ref_from_pil

    # the adapter's own answer, one request at a time (no batching, no shared prefix)
    expected = []
    for i, d in enumerate(docs):
        req = Request(doc_id=str(i), prompt=d["q"], images=(image_ref_from_pil(d["image"]),), group_key=f"solo{i}",
                      generation=GenerationConfig(max_new_tokens=3, stop=("\n",)))
        expected.append(cut_at_stop(lm.adapter.generate([req])[0].text, ("\n",)))
    assert got == expected
    ll = lm.loglikelihood(_instances("loglikelihood", [(docs[0]["q"], c, _doc_to_visual, 0) for c in (" A", " B")]))
    assert all(v < 0 for v, _ in ll) and sum(g for _, g in ll) >= 1


def test_vl_mamba_tiny(registered):
    _tiny_roundtrip(registered, "vl_mamba")


@pytest.mark.slow
def test_cobra_tiny(registered):
    _tiny_roundtrip(registered, "cobra")
