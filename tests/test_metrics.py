"""Loss and metrics against plain numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unet_jax import losses, metrics
from unet_jax.data import loading

C = 5


def _np_cross_entropy(logits, labels, mask, weights=None):
  logits = logits.astype(np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  total = wsum = 0.0
  for idx in zip(*np.nonzero(mask)):
    w = 1.0 if weights is None else weights[labels[idx]]
    total += -w * logp[idx][labels[idx]]
    wsum += w
  return total, wsum


def _np_confusion(labels, preds, mask):
  cm = np.zeros((C, C), np.int64)
  for t, p in zip(labels[mask], preds[mask]):
    cm[t, p] += 1
  return cm


@pytest.mark.parametrize('weights', [None, (1.0, 2.0, 0.5, 3.0, 1.0)])
def test_cross_entropy_matches_numpy_with_ignore_label_and_padding(weights):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 6, C)).astype(np.float32) * 3
  labels = rng.integers(0, C, size=(3, 4, 6))
  labels[0, 0, :3] = 255  # ignore label
  valid = np.array([True, True, False])  # last example is padding
  mask = np.asarray(metrics.valid_pixels(jnp.asarray(labels), jnp.asarray(valid), C, 255))
  expected_mask = (labels != 255) & valid[:, None, None]
  np.testing.assert_array_equal(mask, expected_mask)
  got_sum, got_w = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                        jnp.asarray(mask), weights)
  ref_sum, ref_w = _np_cross_entropy(logits, labels, expected_mask, weights)
  np.testing.assert_allclose(got_sum, ref_sum, rtol=1e-5)
  np.testing.assert_allclose(got_w, ref_w, rtol=1e-6)


def test_cross_entropy_rejects_wrong_number_of_class_weights():
  with pytest.raises(ValueError, match='class_weights has 2 entries for 5 classes'):
    losses.cross_entropy(jnp.zeros((1, 2, 2, C)), jnp.zeros((1, 2, 2), jnp.int32),
                         jnp.ones((1, 2, 2), bool), (1.0, 2.0))


def test_soft_dice_against_hand_computed_values():
  # Two pixels of class 0, one of class 2, one masked pixel; class 1 absent.
  labels = jnp.array([[[0, 0], [2, 1]]])
  mask = jnp.array([[[True, True], [True, False]]])
  probs = np.array([[[[1.0, 0, 0], [0.5, 0.5, 0]], [[0, 0, 1.0], [0, 1.0, 0]]]])
  logits = jnp.log(jnp.asarray(probs) + 1e-30)
  # Class 0: overlap 1.5, prob sum 1.5, truth 2 -> (3 + 1) / (3.5 + 1).
  # Class 2: overlap 1, prob sum 1, truth 1 -> (2 + 1) / (2 + 1) = 1.
  expected = 1 - (4 / 4.5 + 1.0) / 2
  np.testing.assert_allclose(float(losses.soft_dice(logits, labels, mask)), expected, rtol=1e-5)
  perfect = jnp.log(jax.nn.one_hot(labels, 3) + 1e-30)
  assert float(losses.soft_dice(perfect, labels, mask)) < 1e-5


def _np_lovasz_image(logits, labels, mask):
  """Berman et al.'s algorithm for one image, float64, numpy's stable sort (the reference)."""
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs = (probs / probs.sum(-1, keepdims=True))[mask]
  labels = labels[mask]
  per_class = []
  for c in range(logits.shape[-1]):
    truth = (labels == c).astype(np.float64)
    if not truth.any():
      continue
    errors = np.abs(truth - probs[:, c])
    order = np.argsort(-errors, kind='stable')
    t = truth[order]
    jaccard = 1 - (t.sum() - np.cumsum(t)) / (t.sum() + np.cumsum(1 - t))
    per_class.append(errors[order] @ np.diff(jaccard, prepend=0.0))
  return np.mean(per_class)


def _np_lovasz_softmax(logits, labels, mask):
  return np.mean([_np_lovasz_image(*args) for args in zip(logits, labels, mask) if args[2].any()])


def test_lovasz_softmax_is_one_minus_the_images_iou_for_hard_predictions_with_a_mask():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, C, (2, 6, 7))
  preds = np.where(rng.random(labels.shape) < 0.3, rng.integers(0, C, labels.shape), labels)
  mask = rng.random(labels.shape) < 0.8
  mask[1] = False  # a padding image: left out of the mean
  t, p, m = labels[0], preds[0], mask[0]
  ious = [((t == c) & (p == c) & m).sum() / (((t == c) | (p == c)) & m).sum()
          for c in range(C) if ((t == c) & m).any()]
  logits = jnp.asarray(np.eye(C)[preds] * 60.0, jnp.float32)
  loss = float(losses.lovasz_softmax(logits, jnp.asarray(labels), jnp.asarray(mask)))
  np.testing.assert_allclose(loss, 1 - np.mean(ious), rtol=1e-5)
  assert float(losses.lovasz_softmax(jnp.asarray(np.eye(C)[labels] * 60.0), labels, mask)) < 1e-5


def test_lovasz_softmax_and_its_gradient_match_the_reference_on_soft_predictions():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 8, 9, C)) * 2
  labels = rng.integers(0, C - 1, (3, 8, 9))  # class C-1 absent: left out of the mean
  mask = rng.random(labels.shape) < 0.9
  loss, grad = jax.value_and_grad(losses.lovasz_softmax)(jnp.asarray(logits, jnp.float32),
                                                         labels, mask)
  np.testing.assert_allclose(float(loss), _np_lovasz_softmax(logits, labels, mask), rtol=1e-4)
  eps = 1e-3  # central differences of the float64 reference: the sort order is locally fixed
  for idx in [(0, 1, 2, 0), (1, 7, 8, 3), (2, 4, 4, C - 1)]:
    up, down = logits.copy(), logits.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric = (_np_lovasz_softmax(up, labels, mask) - _np_lovasz_softmax(down, labels, mask)) / (2 * eps)
    np.testing.assert_allclose(float(grad[idx]), numeric, rtol=2e-2, atol=1e-5)
  masked = tuple(np.argwhere(~mask)[0])
  np.testing.assert_array_equal(np.asarray(grad[masked]), 0.0)


def test_lovasz_descending_order_matches_a_stable_argsort():
  errors = jnp.asarray(np.random.default_rng(2).permutation(1000).reshape(2, 500) / 999.0,
                       jnp.float32)
  np.testing.assert_array_equal(np.asarray(losses._descending_order(errors)),
                                np.argsort(-np.asarray(errors), axis=1, kind='stable'))


def test_median_frequency_weights_against_hand_computed_values():
  # Image 0: 3 px class 0, 1 px class 1. Image 1: 2 px class 0, 2 px class 2.
  masks = np.array([[[0, 0], [0, 1]], [[0, 2], [2, 0]]], np.uint8)
  # freq: class 0 5/8, class 1 1/4 (only image 0), class 2 2/4; median 1/2; class 3 absent.
  expected = [0.5 / 0.625, 0.5 / 0.25, 1.0, 1.0]
  np.testing.assert_allclose(losses.median_frequency_weights(masks, 4), expected)
  rare = np.zeros((1, 100, 100), np.uint8)
  rare[0, 0, 0] = 1
  assert losses.median_frequency_weights(rare, 2)[1] == losses.MAX_CLASS_WEIGHT


def test_confusion_matrix_matches_numpy():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, C, size=(4, 8, 8))
  preds = rng.integers(0, C, size=(4, 8, 8))
  mask = rng.random((4, 8, 8)) < 0.7
  got = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(preds), jnp.asarray(mask), C)
  np.testing.assert_array_equal(got, _np_confusion(labels, preds, mask))


def test_summary_leaves_out_classes_absent_from_truth_and_prediction():
  # Class 0: 3 right, 1 predicted as 1. Class 1: 2 right. Class 2: only predicted
  # (a false positive). Classes 3 and 4 appear nowhere.
  cm = np.zeros((C, C), np.int64)
  cm[0, 0], cm[0, 1], cm[1, 1], cm[1, 2] = 3, 1, 2, 1
  s = metrics.summarize(cm, ['a', 'b', 'c', 'd', 'e'])
  iou = {'a': 3 / 4, 'b': 2 / 4, 'c': 0.0}
  for name, value in iou.items():
    assert s[f'iou/{name}'] == pytest.approx(value)
  assert np.isnan(s['iou/d']) and np.isnan(s['iou/e'])
  assert s['mean_iou'] == pytest.approx(np.mean(list(iou.values())))
  # Class c, only predicted, counts in mean_iou but not in the mean over the truth's classes.
  assert s['mean_iou_truth'] == pytest.approx(np.mean([iou['a'], iou['b']]))
  assert s['num_present_classes'] == 3
  assert s['pixel_accuracy'] == pytest.approx(5 / 7)


def test_partial_last_batch_counts_each_example_once():
  """Evaluating 7 frames in batches of 3 (padded) equals one pass over all 7."""
  rng = np.random.default_rng(2)
  n, h, w = 7, 4, 4
  data = loading.SplitData(
      images=np.zeros((n, h, w, 3), np.uint8),
      masks=rng.integers(0, C, size=(n, h, w)).astype(np.uint8),
      names=tuple(str(i) for i in range(n)))
  preds_all = rng.integers(0, C, size=(n, h, w))
  batches = list(loading.eval_batches(data, global_batch_size=3))
  assert [len(b['valid']) for b in batches] == [3, 3, 3]
  assert sum(b['valid'].sum() for b in batches) == n
  total = np.zeros((C, C), np.int64)
  for i, b in enumerate(batches):
    idx = np.minimum(np.arange(i * 3, i * 3 + 3), n - 1)  # padding repeats frame 0
    preds = np.where(b['valid'][:, None, None], preds_all[idx], 0)
    mask = metrics.valid_pixels(jnp.asarray(b['label']), jnp.asarray(b['valid']), C, -1)
    total += np.asarray(metrics.confusion_matrix(
        jnp.asarray(b['label']), jnp.asarray(preds), mask, C))
  np.testing.assert_array_equal(total, _np_confusion(data.masks, preds_all,
                                                     np.ones((n, h, w), bool)))


def test_eval_batches_over_process_shards_cover_every_example_once():
  n = 11
  labels = np.arange(n, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
  seen, num_batches = [], set()
  bounds = [loading.shard_bounds(n, p, 3) for p in range(3)]
  assert bounds == [(0, 4), (4, 8), (8, 11)]  # contiguous, as tfds.even_splits
  for lo, hi in bounds:
    shard = loading.SplitData(
        np.zeros((hi - lo, 2, 2, 3), np.uint8), labels[lo:hi],
        tuple(str(i) for i in range(lo, hi)), global_size=n)
    batches = list(loading.eval_batches(shard, 6, process_count=3))
    num_batches.add(len(batches))
    for b in batches:
      assert len(b['valid']) == 2
      seen += list(b['label'][b['valid'], 0, 0])
  assert num_batches == {2}  # every process runs the same number of eval steps
  assert sorted(seen) == list(range(n))
