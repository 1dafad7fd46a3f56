# CG NVT of every trained model with ASE (seed 000 Sec. 2.2, last paragraph), then its
# metrics (Sec. 2.3) and the tidy table of all models. docs/metrics.md.


rule simulate:
    input:
        model=result(TRAINED["model"]),
        hparams=result(TRAINED["hparams"]),
        status=result(TRAINED["status"]),
        dataset=TASK_DATASET,
    output:
        trajectory=result("simulations/{variant}/seed{seed}/trajectory.h5"),
        thermo=result("simulations/{variant}/seed{seed}/thermo.csv"),
        status=result("simulations/{variant}/seed{seed}/status.json"),
    log:
        log_path("simulations/{variant}/seed{seed}"),
    benchmark:
        bench_path("simulations/{variant}/seed{seed}")
    conda:
        "../../../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=0,
        runtime=240,
    params:
        simulation=config["simulation"],
        temperature=config["atomistic"]["temperature"],
        seed=lambda wc: int(wc.seed),
        code=code_hash(
            "tasks/cg_benzene/simulation.py",
            "tasks/cg_benzene/model.py",
            "tasks/cg_benzene/neighbors.py",
            "tasks/cg_benzene/trajectory.py",
        ),
    script:
        "../../../scripts/tasks/cg_benzene/simulate.py"


rule model_metrics:
    input:
        work=result(TRAINED["work"]),
        calibration=rules.timing_calibration.output.calibration,
        dataset=TASK_DATASET,
        train_log=result(TRAINED["log"]),
        train_status=result(TRAINED["status"]),
        trajectory=rules.simulate.output.trajectory,
        thermo=rules.simulate.output.thermo,
        sim_status=rules.simulate.output.status,
        observables=rules.atomistic_observables.output.observables,
        rdf=rules.atomistic_observables.output.rdf,
        msd=rules.atomistic_observables.output.msd,
    output:
        metrics=result("metrics/models/{variant}/seed{seed}.json"),
        figure=report(
            result("simulations/{variant}/seed{seed}/structure.png"),
            caption="../../../report/model_structure.rst",
            category="CG simulations",
            subcategory="{variant}",
            labels={"variant": "{variant}", "seed": "{seed}"},
        ),
    log:
        log_path("metrics/{variant}/seed{seed}"),
    benchmark:
        bench_path("metrics/{variant}/seed{seed}")
    conda:
        "../../../../envs/stats.yaml"
    params:
        config=lambda wc: {k: config[k] for k in ("atomistic", "observables", "metrics", "simulation")},
        code=code_hash("evaluation.py", "timing.py") + TASK_CODE,
    script:
        "../../../scripts/tasks/cg_benzene/model_metrics.py"


rule prescreen:
    """Seed 000's pre-screening hierarchy (stability, validity, structure) of every model (docs/metrics.md)."""
    input:
        models=expand(result("metrics/models/{variant}/seed{seed}.json"), variant=VARIANTS, seed=SEEDS),
    output:
        prescreen=report(
            result("metrics/prescreen.csv"),
            caption="../../../report/prescreen.rst",
            category="Evaluation scheme",
            subcategory="Metrics",
        ),
    log:
        log_path("metrics/prescreen"),
    conda:
        "../../../../envs/stats.yaml"
    params:
        prescreen=config["metrics"]["prescreen"],
        code=code_hash("evaluation.py") + TASK_CODE,
    script:
        "../../../scripts/tasks/cg_benzene/prescreen.py"
