"""Drift tests, shifts, the prediction log, the promotion rule and the alert rules: fast, no service."""

import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from dlbook.deploy.monitor import PCA, AlarmRule, ReferenceStats, chi2_class_mix, first_alarm, ks_test, mmd_test
from dlbook.deploy.predlog import PredictionLog
from dlbook.deploy.registry import should_promote
from dlbook.deploy.shifts import SEVERITIES, add_typos, corrupt, negate

RULES = Path(__file__).resolve().parents[1] / "dlbook" / "deploy" / "alerts.rules.yml"


def binomial_upper(p, n, z=3.0):
    """An upper bound a rate of n Bernoulli(p) trials exceeds with probability about 0.1%."""
    return p + z * np.sqrt(p * (1 - p) / n)


def clean_reference(rng, n=400, d=4, classes=5):
    return ReferenceStats.fit(rng.normal(size=(n, d)), rng.beta(5, 2, n), rng.integers(0, classes, n), classes,
                              mmd_size=200)


@pytest.mark.slow
def test_alarm_rule_holds_its_false_alarm_rate_on_clean_windows():
    """Over repeated seeded trials (a fresh reference and window each), alarms on clean data stay <= alpha."""
    rng = np.random.default_rng(0)
    alarms = [AlarmRule(clean_reference(rng), alpha=0.1, permutations=39, seed=t).check(
        rng.normal(size=(50, 4)), rng.beta(5, 2, 50), rng.integers(0, 5, 50)).alarm for t in range(150)]
    assert np.mean(alarms) <= binomial_upper(0.1, 150)
    big = AlarmRule(clean_reference(rng, n=4000), alpha=0.1, permutations=39, seed=0)  # one fixed, large reference
    assert np.mean([big.check(rng.normal(size=(50, 4)), rng.beta(5, 2, 50), rng.integers(0, 5, 50)).alarm
                    for _ in range(100)]) <= binomial_upper(0.1, 100)


def test_each_test_alone_is_valid_on_clean_samples():
    """Each p-value is (at most) uniform under no drift: P(p <= 0.1) is about 0.1, not more (fresh samples per trial)."""
    rng = np.random.default_rng(1)
    ks = [ks_test(rng.normal(size=(300, 3)), rng.normal(size=(40, 3)))[0] <= 0.1 for _ in range(200)]
    mmd = [mmd_test(rng.normal(size=(150, 3)), rng.normal(size=(40, 3)), permutations=49, seed=s)[1] <= 0.1
           for s in range(200)]
    chi = [chi2_class_mix(np.bincount(rng.integers(0, 4, 300), minlength=4), rng.integers(0, 4, 80), 4) <= 0.1
           for _ in range(200)]
    for rate in (np.mean(ks), np.mean(mmd), np.mean(chi)):
        assert rate <= binomial_upper(0.1, 200)
    assert np.mean(mmd) >= 0.1 - 3 * np.sqrt(0.09 / 200)  # the permutation test is exact, not conservative


def test_a_clear_shift_is_detected_by_each_kind_of_test():
    rng = np.random.default_rng(2)
    ref = clean_reference(rng)
    rule = AlarmRule(ref, alpha=0.05, permutations=99, seed=0)
    mean_shift = [rule.check(rng.normal(0.6, 1, (100, 4)), rng.beta(5, 2, 100), rng.integers(0, 5, 100))
                  for _ in range(10)]
    assert all(r.alarm and {"ks", "mmd"} <= set(r.flagged) for r in mean_shift)
    variance_only = rule.check(rng.normal(0, 2.0, (100, 4)), rng.beta(5, 2, 100), rng.integers(0, 5, 100))
    assert "mmd" in variance_only.flagged  # MMD sees more than a shift of the mean
    low_confidence = rule.check(rng.normal(size=(100, 4)), rng.beta(2, 2, 100), rng.integers(0, 5, 100))
    assert low_confidence.flagged == ["confidence"]
    one_class = rule.check(rng.normal(size=(100, 4)), rng.beta(5, 2, 100), np.r_[np.zeros(60, int), rng.integers(0, 5, 40)])
    assert one_class.flagged == ["class_mix"]


def test_mmd_equals_the_textbook_double_sum():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 2)), rng.normal(0.5, 1, (9, 2))
    sigma = 1.3
    k = lambda a, b: np.exp(-((a - b) ** 2).sum() / (2 * sigma**2))
    xx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (12 * 11)
    yy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (9 * 8)
    xy = sum(k(a, b) for a in x for b in y) / (12 * 9)
    mmd2, p = mmd_test(x, y, permutations=19, bandwidth=sigma)
    assert mmd2 == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    assert p in {(k + 1) / 20 for k in range(20)}


def test_ks_corrections_match_statsmodels():
    rng = np.random.default_rng(4)
    ref, x = rng.normal(size=(200, 6)), rng.normal(size=(60, 6)) + [0.5, 0, 0, 0, 0.3, 0]
    p_bonf, per_dim = ks_test(ref, x, "bonferroni")
    p_bh, _ = ks_test(ref, x, "bh")
    assert per_dim == pytest.approx([stats.ks_2samp(ref[:, j], x[:, j]).pvalue for j in range(6)])
    assert p_bonf == pytest.approx(multipletests(per_dim, method="bonferroni")[1].min())
    assert p_bh == pytest.approx(multipletests(per_dim, method="fdr_bh")[1].min())


def test_chi2_and_pca_against_references():
    ref, observed = np.array([200, 200, 600]), np.array([30, 10, 60])
    expected = np.outer([1000, 100], (ref + observed) / 1100)  # the homogeneity test by hand
    statistic = ((np.stack([ref, observed]) - expected) ** 2 / expected).sum()
    want = stats.chi2.sf(statistic, df=2)
    assert chi2_class_mix(ref, np.repeat([0, 1, 2], observed), 3) == pytest.approx(want, rel=1e-9)
    x = np.random.default_rng(5).normal(size=(100, 4)) @ np.diag([3.0, 2.0, 1.0, 0.5])
    z = PCA(2).fit(x).transform(x)
    assert np.var(z, axis=0) == pytest.approx(np.sort(np.linalg.eigvalsh(np.cov(x.T, ddof=0)))[::-1][:2])


def test_bad_input_is_a_clear_error():
    rng = np.random.default_rng(6)
    ref = clean_reference(rng)
    with pytest.raises(ValueError, match="alpha"):
        AlarmRule(ref, alpha=1.5)
    with pytest.raises(ValueError, match="permutations"):
        AlarmRule(ref, alpha=0.01, permutations=99)
    with pytest.raises(ValueError, match="feature dimension"):
        AlarmRule(ref).check(rng.normal(size=(10, 3)), rng.random(10), rng.integers(0, 5, 10))
    with pytest.raises(ValueError, match="NaN"):
        ks_test(ref.features, np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match="class indices"):
        chi2_class_mix([5, 5], [0, 2], 2)
    assert first_alarm([False, True]) == 2 and first_alarm([]) is None


def test_corruptions_match_their_definitions():
    rng = np.random.default_rng(7)
    images = rng.integers(30, 220, (8, 3, 32, 32), dtype=np.uint8)
    x = images / 255.0
    noisy = corrupt(images, "gaussian_noise", 5, seed=0) / 255.0
    assert np.std(noisy - x) == pytest.approx(SEVERITIES["gaussian_noise"][4], rel=0.05)
    low = corrupt(images, "contrast", 2) / 255.0
    assert low.std(axis=(1, 2, 3)) == pytest.approx(0.5 * x.std(axis=(1, 2, 3)), abs=2e-3)
    from skimage.color import hsv2rgb, rgb2hsv  # an independent HSV implementation
    hsv = rgb2hsv(x.transpose(0, 2, 3, 1))
    hsv[..., 2] = np.clip(hsv[..., 2] + 0.1, 0, 1)
    want = (hsv2rgb(hsv).transpose(0, 3, 1, 2) * 255).round()
    assert np.abs(corrupt(images, "brightness", 2).astype(float) - want).max() <= 1
    blurred = corrupt(images, "gaussian_blur", 5).astype(float)
    assert abs(blurred.mean() - images.mean()) < 1 and np.abs(np.diff(blurred, axis=3)).mean() < 0.5 * np.abs(
        np.diff(images.astype(float), axis=3)).mean()
    assert np.array_equal(corrupt(images, "gaussian_noise", 1, seed=3), corrupt(images, "gaussian_noise", 1, seed=3))
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "contrast", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(x, "contrast", 1)


def test_text_shifts():
    s = "a gorgeous , witty , seductive movie ."
    typo = add_typos(s, rate=1.0, seed=0)
    assert typo != s and sorted(typo) == sorted(s) and len(typo.split()) == len(s.split())
    assert add_typos(s, rate=0.0) == s and negate(s).endswith(s)


def test_prediction_log_round_trip(tmp_path):
    path = tmp_path / "log.db"
    log = PredictionLog(path, keep_inputs=True)
    for i in range(5):
        log.write(f"w{i % 2}-{i}", model="m", version=str(1 + i // 3), predicted=i, class_name=f"c{i}",
                  confidence=i / 5, body=bytes([i]) * 10)
    reader = PredictionLog(path)  # a second connection, as the monitor opens it while the service writes
    assert len(reader) == 5
    rows = reader.rows(prefix="w1-")
    assert [r["request_id"] for r in rows] == ["w1-1", "w1-3"] and rows[1]["version"] == "2"
    assert rows[0]["input"] == bytes([1]) * 10 and len(rows[0]["input_sha256"]) == 64
    assert [r["predicted"] for r in reader.rows(request_ids=["w0-4", "w0-0"])] == [0, 4]
    with pytest.raises(ValueError, match="probability"):
        log.write("x", model="m", version="1", predicted=0, class_name="c", confidence=1.5, body=b"")
    with pytest.raises(ValueError, match="prediction log"):
        PredictionLog(tmp_path / "missing-folder" / "log.db")


def test_promotion_rule_refuses_a_worse_model():
    champion = {"drift_accuracy": 0.50, "clean_accuracy": 0.70}
    assert not should_promote(champion, {"drift_accuracy": 0.49, "clean_accuracy": 0.75}).promote
    assert not should_promote(champion, {"drift_accuracy": 0.50, "clean_accuracy": 0.70}).promote  # a tie is no win
    worse_clean = should_promote(champion, {"drift_accuracy": 0.60, "clean_accuracy": 0.68}, tolerance=0.01)
    assert not worse_clean.promote and "clean accuracy" in worse_clean.reason
    assert should_promote(champion, {"drift_accuracy": 0.60, "clean_accuracy": 0.695}, tolerance=0.01).promote
    assert not should_promote(champion, {"drift_accuracy": 0.52, "clean_accuracy": 0.70}, min_gain=0.03).promote
    with pytest.raises(ValueError, match="lack"):
        should_promote(champion, {"clean_accuracy": 0.7})


promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool is not installed (Debian package prometheus)")


@promtool
def test_alert_rules_pass_promtool_check():
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout + out.stderr


@promtool
def test_alert_rules_fire_on_errors_and_stay_quiet_without(tmp_path):
    """promtool's rule unit test: 5% of requests fail -> ModelServiceErrors fires after its 5 minutes; 0% -> silent."""
    series = lambda status, step: (f'http_requests_total{{job="dlbook-model-service", instance="a", '
                                   f'endpoint="/predict", method="POST", status="{status}"}}', f"0+{step}x30")
    ok, bad = series("200", 95), series("500", 5)
    spec = textwrap.dedent(f"""\
        rule_files: [{RULES}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - {{series: '{ok[0]}', values: '{ok[1]}'}}
              - {{series: '{bad[0]}', values: '{bad[1]}'}}
            alert_rule_test:
              - {{eval_time: 3m, alertname: ModelServiceErrors, exp_alerts: []}}
              - eval_time: 20m
                alertname: ModelServiceErrors
                exp_alerts:
                  - exp_labels: {{severity: page, instance: a}}
                    exp_annotations: {{summary: "More than 1% of /predict requests on a fail with 5xx"}}
          - interval: 1m
            input_series:
              - {{series: '{ok[0]}', values: '{ok[1]}'}}
            alert_rule_test:
              - {{eval_time: 20m, alertname: ModelServiceErrors, exp_alerts: []}}
        """)
    (tmp_path / "test.yml").write_text(spec)
    out = subprocess.run(["promtool", "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
