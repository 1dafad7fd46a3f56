# Meta-training of the learned multi-gradient optimizer of the ml2o / gml2o variants
# (seed 003, arXiv 2311.00559). docs/ml2o.md.
#
# A variant of method ml2o or gml2o reads the artifact named by its method param
# optimizer_path. Its training job must (common.smk, train_inputs / method params):
#   - list result("l2o/optimizer.pt") as an input (e.g. inputs["l2o_optimizer"]), so the
#     artifact is built first and a new artifact retrains the variant;
#   - pass optimizer_path=result("l2o/optimizer.pt") unless the variant's params name another file.


rule meta_train_l2o:
    """Truncated-BPTT meta-training (short trainings of the task's own model, or analytic problems) -> the stored
    optimizer, its record with the held-out comparison, the meta-loss curve."""
    input:
        unpack(meta_train_inputs),
    output:
        optimizer=result("l2o/optimizer.pt"),
        record=result("l2o/optimizer.json"),
        curve=result("l2o/meta_curve.csv"),
        plot=report(
            result("l2o/meta_curve.png"),
            caption="../report/meta_curve.rst",
            category="Learned optimizer",
        ),
    log:
        log_path("l2o/meta_train"),
    benchmark:
        bench_path("l2o/meta_train")
    # the longest job of a demo and the one the ml2o / gml2o trainings wait for: started first (a 2-core
    # run otherwise fills both cores with short trainings and starts it minutes late)
    priority: 10
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
        runtime=lambda wc: max(10, int(config["l2o"]["meta"]["episodes"]) // 10),
    params:
        l2o=config["l2o"],
        model=config.get("model", {}),
        training=TRAINING,
        checkpoint=result("checkpoints/l2o/meta.pt"),
        code=code_hash("l2o", "training.py", "tasks"),
    script:
        "../scripts/meta_train_l2o.py"


# Seed 003's transfer experiment (balancebench.l2o.transfer; docs/ml2o.md, "Transfer"): for each pair of
# l2o.transfer.pairs (TRANSFER_PAIRS, common.smk), meta-train on its meta_model and train every method on its
# test_model; the claims table reads the tables.


rule l2o_transfer:
    """One transfer pair: its artifact, and one row per method, step factor and seed with the split errors."""
    input:
        dataset=TASK_DATASET,
    output:
        table=result("l2o/transfer/{pair}.csv"),
        summary=result("l2o/transfer/{pair}.json"),
        optimizer=result("l2o/transfer/{pair}/optimizer.pt"),
        record=result("l2o/transfer/{pair}/optimizer.json"),
    log:
        log_path("l2o/transfer/{pair}"),
    benchmark:
        bench_path("l2o/transfer/{pair}")
    wildcard_constraints:
        pair="|".join(TRANSFER_PAIRS) if TRANSFER_PAIRS else "(?!)",
    priority: 10  # minutes long, and the claims table waits for it: started early, beside the rest
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
        runtime=60,
    params:
        l2o=config["l2o"],
        model=config.get("model", {}),
        training=TRAINING,
        code=code_hash("l2o", "training.py", "balancing", "tasks"),
    script:
        "../scripts/l2o_transfer.py"
