# Meta-training of the learned multi-gradient optimizer of the ml2o / gml2o variants
# (seed 003, arXiv 2311.00559). docs/ml2o.md.
#
# A variant using the optimizer names the artifact in its method params
# (balancing.variants.<v>.params.optimizer_path, default results/l2o/optimizer.pt); its
# training rule must list that file as an input (see l2o_training_inputs below), so the
# artifact is (re)built first and a new artifact retrains the variant.


rule meta_train_l2o:
    """Truncated-BPTT meta-training on cheap two-objective problems -> the stored optimizer + record."""
    output:
        optimizer=result("l2o/optimizer.pt"),
        record=result("l2o/optimizer.json"),
    log:
        log_path("l2o/meta_train"),
    benchmark:
        bench_path("l2o/meta_train")
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
        runtime=lambda wc: max(10, int(config["l2o"]["meta"]["episodes"]) // 10),
    params:
        l2o=config["l2o"],
        checkpoint=result("checkpoints/l2o/meta.pt"),
        code=code_hash("l2o", "model.py", "training.py", "neighbors.py", "cg.py"),
    script:
        "../scripts/meta_train_l2o.py"


def l2o_training_inputs(method, params):
    """Extra inputs of a training job: the optimizer artifact for ml2o / gml2o (else nothing)."""
    if method in ("ml2o", "gml2o"):
        return {
            "l2o_optimizer": params.get("optimizer_path", result("l2o/optimizer.pt"))
        }
    return {}
