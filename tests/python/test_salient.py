"""The Python module (`import salient`), run by ctest with Debian's /usr/bin/python3:
PYTHONPATH holds build/python; SALIENT_MODELS_DIR the test models, SALIENT_BIN_DIR the tools."""
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
import torch
import torchvision

import salient

MODELS = os.environ["SALIENT_MODELS_DIR"]
BIN = os.environ["SALIENT_BIN_DIR"]
TINY = os.path.join(MODELS, "tiny_fashion.pt")


def tiny_input(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, 28, 28, generator=g)


def traced_resnet18():
    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    return net, torch.jit.trace(net, torch.zeros(1, 3, 64, 64))


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ShippedModel(unittest.TestCase):
    def test_the_shipped_model_predicts_the_shipped_photos(self):
        data = os.path.join(os.path.dirname(__file__), "..", "..", "data")
        with open(os.path.join(data, "models", "expected_predictions.json")) as f:
            expected = json.load(f)["top5"]
        model = salient.load(os.path.join(data, "models", "mobilenet_v2_imagenet.pt"))
        for photo in ("cat.png", "bird.png", "owl.jpg"):
            with self.subTest(photo=photo):
                x = salient.load_input(os.path.join(data, "images", photo))
                self.assertEqual(tuple(x.shape), (1, 3, 224, 224))
                self.assertEqual(int(model(x).argmax()), expected[photo][0][0])


class EveryMethodEqualsTheTools(unittest.TestCase):
    """Each method from Python equals salient-explain's .npy bit for bit on the same input."""

    def test_every_method(self):
        self.check_every_method(TINY, tiny_input(), "none")

    def test_every_method_on_resnet18(self):
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
        self.check_every_method(os.path.join(MODELS, "resnet18.pt"), x, "imagenet")

    def check_every_method(self, model_path, x, normalization):
        names = [m["name"] for m in salient.methods()]
        self.assertGreaterEqual(len(names), 30)
        threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as work:
            np.save(os.path.join(work, "item.npy"), x.numpy())
            out = os.path.join(work, "out")
            subprocess.run([os.path.join(BIN, "salient-explain"), "--model", model_path, "--image", os.path.join(work, "item.npy"),
                            "--normalize", normalization, "--method", ",".join(names), "--threads", str(threads), "--out", out],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            model = salient.load(model_path)
            for facts in salient.methods():
                name = facts["name"]
                options = {"normalization": normalization}
                if "relative_stdev" in facts["options"]:
                    options["relative_stdev"] = 0.15  # the tools' SmoothGrad noise level
                with self.subTest(method=name):
                    ours = getattr(salient, name)(model, x, **options)
                    tools = np.load(os.path.join(out, "item.%s.npy" % name))
                    self.assertEqual(tuple(ours.shape), tools.shape)
                    self.assertTrue(np.array_equal(ours.numpy(), tools), "%s differs from salient-explain's map" % name)


class TracedTorchvisionModels(unittest.TestCase):
    """Grad-CAM and guided backprop on a torch.jit.trace'd torchvision model (Captum's hook methods
    cannot run on TorchScript)."""

    def test_gradcam_equals_a_hook_gradcam_on_the_module(self):
        net, traced = traced_resnet18()
        x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        target = [3, 7]
        cam = salient.gradcam(traced, x, target=target, layer="layer4", relu=False, upsample=False)
        # Captum's LayerGradCam, by hand on the nn.Module: mean gradient per channel times the activation.
        kept = {}
        handle = net.layer4.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
        out = net(x)
        handle.remove()
        a = kept["a"]
        grads = torch.autograd.grad(out[torch.arange(2), torch.tensor(target)].sum(), a)[0]
        expected = (grads.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True).detach()
        self.assertEqual(tuple(cam.shape), (2, 1, 2, 2))
        torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())

    def test_guided_backprop_and_the_saved_file_agree(self):
        _, traced = traced_resnet18()
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
        gbp = salient.guided_backprop(traced, x, target=5)
        self.assertEqual(tuple(gbp.shape), (1, 3, 64, 64))
        self.assertTrue(torch.isfinite(gbp).all() and gbp.abs().sum() > 0)
        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "resnet18.pt")
            traced.save(path)
            self.assertTrue(torch.equal(salient.guided_backprop(path, x, target=5), gbp))
            self.assertTrue(torch.equal(salient.gradcam(path, x, target=5), salient.gradcam(traced, x, target=5)))

    def test_layer_masking_ignores_the_removed_pixels_colour(self):
        _, traced = traced_resnet18()
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
        masks = torch.ones(2, 1, 64, 64)
        masks[0, :, 10:30, 20:50] = 0
        masks[1, :, 40:, :] = 0
        outputs = []
        for fill in (0.0, 1.0, -7.5):
            painted = x.repeat(2, 1, 1, 1)  # one image per mask, painted where that mask removes
            for item, m in enumerate(masks):
                painted[item][:, m[0] == 0] = fill
            outputs.append(salient.masked_outputs(traced, painted, masks, masker="layer", normalization="none"))
        self.assertEqual(tuple(outputs[0].shape), (2, 1000))
        for other in outputs[1:]:
            torch.testing.assert_close(other, outputs[0], rtol=1e-5, atol=1e-5)
        zero = salient.masked_outputs(traced, x, masks, masker="zero", normalization="none")
        self.assertFalse(torch.allclose(zero, outputs[0], atol=1e-3), "layer masking must not be a zero fill")


class CaptumReferences(unittest.TestCase):
    """DeepLIFT and DeepLIFT-SHAP on VGG-16 from Python give Captum 0.8's own arrays
    (../shared/references: cat.png, torchvision vgg16 after torch.manual_seed(0), target 100)."""

    def test_deeplift_on_vgg16(self):
        shared = os.environ.get("SALIENT_SHARED") or os.environ.get("SALIENT_SHARED_DIR", "")
        references = os.path.join(shared, "references")
        if not os.path.isfile(os.path.join(references, "vgg16.captum.deeplift.npy")):
            print("SKIPPED: no ../shared/references (set SALIENT_SHARED)")
            self.skipTest("no ../shared/references")
        x = torch.from_numpy(np.load(os.path.join(references, "input.npy")))
        model = salient.load(os.path.join(MODELS, "vgg16.pt"))
        for method, options, array in (("deeplift", {}, "vgg16.captum.deeplift.npy"),
                                       ("deepliftshap", {"baseline": "zero,black,grey"}, "vgg16.captum.deepliftshap.npy")):
            with self.subTest(method=method):
                ours = salient.attribute(method, model, x, target=100, **options).numpy()
                captum = np.load(os.path.join(references, array))
                self.assertLessEqual(np.abs(ours - captum).max() / np.abs(captum).max(), 1e-4)


class DeltaAndSegments(unittest.TestCase):
    def test_convergence_delta_is_the_completeness_gap(self):
        model = salient.load(TINY)
        x = torch.cat([tiny_input(6), tiny_input(7)])
        ig, delta = salient.integrated_gradients(model, x, target=[1, 4], steps=64, return_convergence_delta=True)
        self.assertTrue(torch.equal(ig, salient.integrated_gradients(model, x, target=[1, 4], steps=64)))
        outputs = model(x).double()
        zero = model(torch.zeros_like(x)).double()
        expected = ig.double().sum(dim=(1, 2, 3)) - (outputs[[0, 1], [1, 4]] - zero[[0, 1], [1, 4]])
        self.assertEqual(delta.dtype, torch.float64)
        torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-5)
        with self.assertRaises(salient.Error) as caught:
            salient.saliency(model, x, return_convergence_delta=True)
        self.assertIn("integrated_gradients", str(caught.exception))

    def test_segments_are_the_ones_lime_uses(self):
        x = salient.load_input(os.path.join(os.path.dirname(__file__), "..", "..", "data", "images", "cat.png"), size=96)
        labels = salient.segment(x, "slic:20")
        self.assertEqual(tuple(labels.shape), (96, 96))
        self.assertEqual(labels.dtype, torch.int64)
        count = int(labels.max()) + 1
        self.assertTrue(5 <= count <= 40 and int(labels.min()) == 0)
        self.assertEqual(sorted(labels.unique().tolist()), list(range(count)))
        grid = salient.segment(x, "grid:32")
        self.assertEqual(sorted(grid.unique().tolist()), list(range(9)))
        self.assertTrue(torch.equal(grid[:32, :32], torch.zeros(32, 32, dtype=torch.int64)))


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")
SHIPPED_MODEL = os.path.join(DATA, "models", "mobilenet_v2_imagenet.pt")
CAT = os.path.join(DATA, "images", "cat.png")


def run_tool(*args):
    subprocess.run([os.path.join(BIN, args[0])] + [str(a) for a in args[1:]] + ["--threads", str(torch.get_num_threads())],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class MetricsEqualTheTool(unittest.TestCase):
    """salient.evaluate gives salient-evaluate's numbers bit for bit (its results.json), for
    metrics of every category, from the method's maps and from maps passed in."""

    def test_evaluate_equals_salient_evaluate(self):
        from PIL import Image

        metrics = {"faithfulness_correlation": {}, "pixel_flipping": {}, "road": {"percentages": [10, 50, 90]},
                   "sparseness": {}, "complexity": {}, "random_logit": {}, "mprt": {}, "max_sensitivity": {"samples": 2},
                   "pointing_game": {}, "top_k_intersection": {"k": 200}}
        catalogue = {m["name"]: m for m in salient.metrics()}
        self.assertEqual(len(catalogue), 24)
        self.assertEqual(catalogue["road"]["category"], "faithfulness")
        self.assertTrue(catalogue["pointing_game"]["needs_mask"] and catalogue["mprt"]["needs_method"])
        self.assertEqual(catalogue["top_k_intersection"]["defaults"], {"k": 1000, "concept_influence": False})
        with tempfile.TemporaryDirectory() as work:
            images, masks = os.path.join(work, "images"), os.path.join(work, "masks")
            os.makedirs(images), os.makedirs(masks)
            Image.open(CAT).save(os.path.join(images, "cat.png"))
            with Image.open(CAT) as photo:
                width, height = photo.size
            mask = np.zeros((height, width), np.uint8)
            mask[:, : width // 2] = 255
            Image.fromarray(mask, "L").save(os.path.join(masks, "cat_mask.png"))
            options = []
            for name, values in metrics.items():
                for option, value in values.items():
                    options += ["--metric-option", "%s.%s=%s" % (name, option, ",".join(map(str, value)) if isinstance(value, list) else value)]
            out = os.path.join(work, "eval")
            run_tool("salient-evaluate", "--model", SHIPPED_MODEL, "--images", images, "--masks", masks, "--size", 64,
                     "--methods", "saliency,gradcam", "--metrics", ",".join(metrics), *options, "--out", out)
            with open(os.path.join(out, "results.json")) as f:
                row = json.load(f)["photos"][0]
            model = salient.load(SHIPPED_MODEL)
            x = salient.load_input(CAT, size=64)
            object_mask = salient.load_input(os.path.join(masks, "cat_mask.png"), size=64, normalization="none")[0, 0] >= 0.5
            for method in ("saliency", "gradcam"):
                given = salient.attribute(method, model, x)
                for name, values in metrics.items():
                    with self.subTest(method=method, metric=name):
                        ours = salient.evaluate(name, model, x, method=method, masks=object_mask, **values)
                        self.assertEqual(ours.dtype, torch.float64)
                        self.assertEqual(ours.tolist(), [row["values"][method][name]])
                        if not catalogue[name]["needs_method"]:  # the same map passed in
                            self.assertEqual(salient.evaluate(name, model, x, attributions=given, masks=object_mask, **values).tolist(),
                                             ours.tolist())
        # Batches score each input by itself; errors name what is missing.
        x2 = torch.cat([salient.load_input(CAT, size=64), salient.load_input(os.path.join(DATA, "images", "bird.png"), size=64)])
        batch = salient.evaluate("sparseness", model, x2, method="saliency")
        self.assertEqual(batch.tolist(), [salient.evaluate("sparseness", model, x2[i:i + 1], method="saliency").item() for i in range(2)])
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("mprt", model, x2, attributions=salient.saliency(model, x2))
        self.assertIn("method=", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("pointing_game", model, x2, method="saliency")
        self.assertIn("masks", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("road", model, x2, method="saliency", nois=1)
        self.assertIn("has no option 'nois'", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("sparseness", model, torch.zeros(0, 3, 64, 64), method="saliency")
        self.assertIn("at least one item", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("no_such_metric", model, x2, method="saliency")
        self.assertIn("faithfulness_correlation", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.evaluate("sparseness", model, x2, attributions=torch.zeros(1, 1, 64, 64))
        self.assertIn("shape", str(caught.exception))


class SanityTests(unittest.TestCase):
    def test_parameter_randomisation_equals_salient_sanity(self):
        model = salient.load(SHIPPED_MODEL)
        x = salient.load_input(CAT, size=64)
        before = model(x)
        result = salient.parameter_randomisation(model, x, ["saliency", "gradcam"])
        self.assertTrue(torch.equal(model(x), before))  # parameters restored
        self.assertEqual(result["methods"], ["saliency", "gradcam"])
        self.assertEqual(result["targets"], [int(before.argmax())])
        steps = len(result["steps"])
        self.assertEqual(result["steps"][0]["group"], "original")
        self.assertEqual(len(result["steps"][-1]["randomised"]), steps - 1)  # cascading: all groups at the end
        similarity = result["similarity"]
        self.assertEqual(tuple(similarity["spearman_abs"].shape), (steps, 2, 1))
        self.assertTrue(torch.allclose(similarity["spearman_abs"][0], torch.ones(2, 1, dtype=torch.float64)))
        self.assertLess(float(similarity["spearman_abs"][-1, 0, 0]), 0.9)  # a gradient of a random network differs
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "sanity")
            run_tool("salient-sanity", "--model", SHIPPED_MODEL, "--images", CAT, "--size", 64, "--methods", "saliency,gradcam",
                     "--out", out)
            with open(os.path.join(out, "results.json")) as f:
                document = json.load(f)
            self.assertEqual(document["methods"][:2], ["saliency", "gradcam"])  # then the tool's edge detector
            tool = document["images"][0]["similarity"]  # [step][method] -> 4 measures
        ours = torch.stack([similarity[k] for k in ("spearman_abs", "spearman", "ssim", "hog")], -1)[:, :, 0]
        self.assertEqual(len(tool), steps)
        for step in range(steps):
            for method in range(2):
                expected = [float("nan") if v is None else v for v in tool[step][method]]
                self.assertTrue(np.array_equal(ours[step, method].numpy(), np.array(expected), equal_nan=True),
                                "step %d method %d: %s vs %s" % (step, method, ours[step, method].tolist(), expected))
        kept = salient.parameter_randomisation(model, x, {"integrated_gradients": {"steps": 8}}, mode="independent",
                                               groups=["classifier.1"], keep_maps=True)
        self.assertEqual([s["group"] for s in kept["steps"]], ["original", "classifier.1"])
        self.assertTrue(torch.equal(kept["maps"][0][0], salient.integrated_gradients(model, x, steps=8)))
        with self.assertRaises(salient.Error) as caught:
            salient.parameter_randomisation(model, x, ["saliency"], mode="sideways")
        self.assertIn("cascading", str(caught.exception))

    def test_data_randomisation(self):
        model = salient.load(TINY)
        x = torch.cat([tiny_input(1), tiny_input(2)])
        same = salient.data_randomisation(model, model, x, ["saliency", "gradcam"], target=[3, 5])
        self.assertEqual(tuple(same["similarity"]["ssim"].shape), (2, 2))
        self.assertTrue(torch.allclose(same["similarity"]["spearman"], torch.ones(2, 2, dtype=torch.float64)))
        self.assertTrue(torch.equal(same["trained_maps"][0], salient.saliency(model, x, target=[3, 5])))
        torch.manual_seed(1)
        other = torch.jit.load(TINY)
        with torch.no_grad():
            for p in other.parameters():
                p.copy_(torch.randn_like(p) * 0.1)
        different = salient.data_randomisation(model, other, x, "saliency", target=[3, 5])
        self.assertLess(float(different["similarity"]["spearman"].max()), 0.9)
        self.assertTrue(torch.equal(different["permuted_maps"][0], salient.saliency(other, x, target=[3, 5])))


class SegmentationModels(unittest.TestCase):
    def test_a_segmentation_models_regions(self):
        shared = os.environ.get("SALIENT_SHARED") or os.environ.get("SALIENT_SHARED_DIR", "")
        path = os.path.join(shared, "models", "deeplabv3_mnv2_pascal.pt")
        if not os.path.isfile(path):
            print("SKIPPED: no ../shared/models/deeplabv3_mnv2_pascal.pt (set SALIENT_SHARED)")
            self.skipTest("no segmentation model")
        size = 193  # DeepLab's sizes are 16k+1
        x = salient.load_input(os.path.join(DATA, "images", "pets.jpg"), size=size)
        labels = salient.segment(x, "model:" + path)
        self.assertEqual(tuple(labels.shape), (size, size))
        count = int(labels.max()) + 1
        self.assertEqual(sorted(labels.unique().tolist()), list(range(count)))
        # The model's classes, run through salient (torch.jit's profiling executor and OpenBLAS's
        # threads round differently: a near-tie pixel may flip)
        classes = salient.load(path)(x).argmax(1)[0]
        self.assertEqual(tuple(classes.shape), (size, size))
        self.assertGreater(len(classes.unique()), 1)  # pets.jpg: background and animals
        for label in range(count):  # each region is one class ...
            self.assertEqual(len(classes[labels == label].unique()), 1)
        # ... and regions of one class never touch (connected components, 4-neighbours)
        for axis in (0, 1):
            a, b = labels.narrow(axis, 1, size - 1), labels.narrow(axis, 0, size - 1)
            ca, cb = classes.narrow(axis, 1, size - 1), classes.narrow(axis, 0, size - 1)
            self.assertFalse(bool(((a != b) & (ca == cb)).any()))
        lime = salient.lime(SHIPPED_MODEL, x, segments="model:" + path, samples=50)
        self.assertEqual(tuple(lime.shape), (1, 1, size, size))


class Certificates(unittest.TestCase):
    """verify from Python: its verdict is what anyone gets by running the model; edits are refused."""

    def test_verify_is_the_models_own_top_k(self):
        import hashlib
        from PIL import Image

        data = os.path.join(os.path.dirname(__file__), "..", "..", "data")
        model_path = os.path.join(data, "models", "mobilenet_v2_imagenet.pt")
        image_path = os.path.join(data, "images", "cat.png")
        digest = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()
        x = salient.load_input(image_path)
        model = salient.load(model_path)
        top5 = model(x)[0].topk(5).indices.tolist()
        a, b = top5[0], top5[1]
        masks = {"A": torch.zeros(224, 224), "B": torch.zeros(224, 224)}
        masks["A"][:, :112] = 1
        masks["B"][:, 112:] = 1
        document = {"format": "salient-topk-certificate/2", "relation": "two_entities", "class_a": a, "class_b": b, "k": 5,
                    "masker": "layer", "height": 224, "width": 224, "masks": {"A": "c_A.png", "B": "c_B.png"},
                    "claims": [{"mask": "A", "in_top_k": [a], "not_in_top_k": [b]},
                               {"mask": "B", "in_top_k": [b], "not_in_top_k": [a]}],
                    "subject": {"model": {"sha256": digest(model_path)}, "image": {"sha256": digest(image_path)}}}
        with tempfile.TemporaryDirectory() as work:
            for name, mask in masks.items():
                Image.fromarray((mask.numpy() * 255).astype(np.uint8), "L").save(os.path.join(work, "c_%s.png" % name))

            def check(doc, image=image_path):
                path = os.path.join(work, "c.json")
                with open(path, "w") as f:
                    json.dump(doc, f)
                return salient.verify(path, model_path, image)

            result = check(document)
            self.assertIsNone(result["rejected"])
            self.assertEqual(result["image_top_k"], top5)
            outputs = salient.masked_outputs(model, x, torch.stack([masks["A"], masks["B"]]).unsqueeze(1), masker="layer")
            for check_result, row in zip(result["checks"], outputs):
                top = row.topk(5).indices.tolist()
                self.assertEqual(check_result["top_k"], top)
                claim_holds = all(c in top for c in check_result["in_top_k"]) and not any(c in top for c in check_result["not_in_top_k"])
                self.assertEqual(check_result["holds"], claim_holds)
            self.assertEqual(result["holds"], all(c["holds"] for c in result["checks"]) and result["classes_in_top_k"])
            forged = json.loads(json.dumps(document))
            forged["class_a"], forged["class_b"] = 1, 2
            self.assertIn("is not one that proves", check(forged)["rejected"])
            forged = json.loads(json.dumps(document))
            del forged["claims"][1]
            self.assertIn("exactly once", check(forged)["rejected"])
            self.assertIn("another image", check(document, os.path.join(data, "images", "bird.png"))["rejected"])


class TopkSearch(unittest.TestCase):
    """salient.disambiguate_topk decides what salient-topk decides and writes the same
    certificates, byte for byte; verify accepts them; nothing existing is overwritten."""

    def test_the_search_equals_salient_topk(self):
        pets = os.path.join(DATA, "images", "pets.jpg")
        x = salient.load_input(pets)
        result = salient.disambiguate_topk(SHIPPED_MODEL, x, k=3)
        self.assertEqual(len(result["pairs"]), 3)
        self.assertEqual(result["classes"], salient.load(SHIPPED_MODEL)(x)[0].topk(3).indices.tolist())
        self.assertEqual(tuple(result["entities"].shape), (224, 224))
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "topk")
            run_tool("salient-topk", "--model", SHIPPED_MODEL, "--image", pets, "--k", 3, "--entities", "attribution", "--out", out)
            with open(os.path.join(out, "summary.json")) as f:
                tool = json.load(f)
            self.assertEqual([(p["class_a"], p["class_b"], p["relation"]) for p in tool["pairs"]],
                             [(p["class_a"], p["class_b"], p["relation"]) for p in result["pairs"]])
            self.assertEqual(tool["entity_count"], result["entity_count"])
            decided = [p for p in result["pairs"] if p["certificate"] is not None]
            self.assertTrue(decided, "pets.jpg has decided pairs")
            for pair in decided:
                certificate = pair["certificate"]
                self.assertEqual((certificate.class_a, certificate.class_b, certificate.relation),
                                 (pair["class_a"], pair["class_b"], pair["relation"]))
                stem = "pair_%d_%d" % (pair["class_a"], pair["class_b"])
                ours = os.path.join(work, stem + ".json")
                written = certificate.save(ours, SHIPPED_MODEL, pets)
                self.assertEqual(len(written), 1 + len(certificate.masks))
                for path in written:
                    with open(path, "rb") as a, open(os.path.join(out, "certificates", os.path.basename(path)), "rb") as b:
                        self.assertEqual(a.read(), b.read(), path)
                self.assertTrue(salient.verify(ours, SHIPPED_MODEL, pets)["holds"])
                with self.assertRaises(salient.Error) as caught:  # written once, never replaced
                    certificate.save(ours, SHIPPED_MODEL, pets)
                self.assertIn("exists", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.disambiguate_topk(SHIPPED_MODEL, x, k=1)
        self.assertIn("k must be", str(caught.exception))
        with self.assertRaises(salient.Error) as caught:
            salient.disambiguate_topk(SHIPPED_MODEL, x, entities="everything")
        self.assertIn("attribution", str(caught.exception))


class CallablesAndThreads(unittest.TestCase):
    def test_a_python_callable_for_forward_only_methods(self):
        scripted = torch.jit.load(TINY)
        x = tiny_input(4)
        via_callable = salient.occlusion(lambda t: scripted(t), x, target=2, window=5, strides=3)
        via_script = salient.occlusion(scripted, x, target=2, window=5, strides=3)
        torch.testing.assert_close(via_callable, via_script, rtol=1e-5, atol=1e-6)

    def test_the_gil_is_released_and_threads_give_the_serial_results(self):
        _, traced = traced_resnet18()
        model = salient.load(traced)
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
        serial = [salient.occlusion(model, x, target=t, window=8, strides=4) for t in (1, 2)]
        results, ticks = {}, [0]
        workers = [threading.Thread(target=lambda t=t: results.__setitem__(t, salient.occlusion(model, x, target=t, window=8, strides=4)))
                   for t in (1, 2)]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            ticks[0] += 1  # Python runs while C++ computes
            time.sleep(0.001)
        self.assertGreater(ticks[0], 20)
        self.assertTrue(torch.equal(results[1], serial[0]) and torch.equal(results[2], serial[1]))

    def test_progress_callback(self):
        calls = []
        salient.rise(TINY, tiny_input(), target=1, masks=64, batch_size=16, progress=lambda done, total: calls.append((done, total)))
        self.assertTrue(calls)
        self.assertEqual(calls[-1][0], calls[-1][1])
        x = torch.cat([tiny_input(1), tiny_input(2)])
        calls.clear()
        salient.evaluate("sparseness", TINY, x, method="saliency", progress=lambda done, total: calls.append((done, total)))
        self.assertEqual(calls, [(1, 2), (2, 2)])
        calls.clear()
        result = salient.parameter_randomisation(TINY, x, ["saliency"], progress=lambda done, total: calls.append((done, total)))
        steps = len(result["steps"])
        self.assertEqual(calls, [(k, steps) for k in range(1, steps + 1)])
        with self.assertRaises(salient.Error) as caught:
            salient.saliency(TINY, x, progress=3)
        self.assertIn("callable", str(caught.exception))


class BadInput(unittest.TestCase):
    def check_error(self, fn, *parts):
        with self.assertRaises(salient.Error) as caught:
            fn()
        for part in parts:
            self.assertIn(part, str(caught.exception))

    def test_clear_errors(self):
        x = tiny_input()
        self.check_error(lambda: salient.saliency(TINY, x.double()), "float32")
        self.check_error(lambda: salient.saliency(TINY, x.expand(2, 1, 28, 28).transpose(2, 3)), "contiguous")
        self.check_error(lambda: salient.saliency(TINY, torch.empty(1, 1, 28, 28, device="meta")), "meta", "CPU")
        nan = x.clone()
        nan[0, 0, 3, 4] = float("nan")
        self.check_error(lambda: salient.saliency(TINY, nan), "NaN")
        self.check_error(lambda: salient.integrated_gradients(TINY, x, stepz=3), "unknown option 'stepz'", "steps")
        self.check_error(lambda: salient.integrated_gradients(TINY, x, steps=0), "steps")
        self.check_error(lambda: salient.saliency(TINY, x, masker="layer"), "unknown option 'masker'")
        self.check_error(lambda: salient.saliency(TINY, x, target=10), "10")
        self.check_error(lambda: salient.saliency(TINY, x, target="cat"), "target")
        self.check_error(lambda: salient.saliency(TINY, x[0]), "[N,C,H,W]")
        self.check_error(lambda: salient.saliency("/nonexistent.pt", x), "not found")
        self.check_error(lambda: salient.attribute("no_such_method", TINY, x), "no_such_method")
        self.check_error(lambda: salient.saliency(lambda t: "not a tensor", x), "str")
        with self.assertRaises(ZeroDivisionError):  # the model's own Python error comes through
            salient.occlusion(lambda t: 1 / 0, x, target=0)

    def test_nothing_leaks_over_1000_calls(self):
        model = salient.load(TINY)
        x = tiny_input()
        for _ in range(100):
            salient.saliency(model, x)
        gc.collect()
        before = rss_kib()
        for _ in range(1000):
            salient.saliency(model, x)
            try:
                salient.saliency(model, x, stepz=1)
            except salient.Error:
                pass
        gc.collect()
        grown = rss_kib() - before
        self.assertLess(grown, 8 * 1024, "RSS grew by %d KiB over 1000 calls" % grown)


if __name__ == "__main__":
    unittest.main(verbosity=2)
