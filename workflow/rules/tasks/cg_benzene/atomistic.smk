# Atomistic stage: OPLS-AA benzene in LAMMPS (seed 000 Sec. 2.2).


rule build_system:
    output:
        data=result("atomistic/initial.data"),
    log:
        log_path("atomistic/build_system"),
    benchmark:
        bench_path("atomistic/build_system")
    conda:
        "../../../../envs/md.yaml"
    params:
        md=config["atomistic"],
        seed=config["seed"],
        code=code_hash("tasks/cg_benzene/atomistic/builder.py", "tasks/cg_benzene/atomistic/forcefield.py"),
    script:
        "../../../scripts/tasks/cg_benzene/build_system.py"


rule equilibrate:
    input:
        data=rules.build_system.output.data,
    output:
        data=result("atomistic/equilibrated.data"),
        trace=result("atomistic/equilibration.csv"),
        summary=result("atomistic/equilibration.json"),
    log:
        script=log_path("atomistic/equilibrate"),
        lammps=log_path("atomistic/equilibrate.lammps"),
    benchmark:
        bench_path("atomistic/equilibrate")
    conda:
        "../../../../envs/md.yaml"
    threads: 16
    resources:
        runtime=md_runtime_minutes(config, "equilibrate"),
        mem_mb=4000,
    params:
        md=config["atomistic"],
        seed=config["seed"],
        code=code_hash("tasks/cg_benzene/atomistic", "tasks/cg_benzene/lammps_runtime.py"),
    script:
        "../../../scripts/tasks/cg_benzene/equilibrate.py"


rule production:
    input:
        data=rules.equilibrate.output.data,
    output:
        trajectory=result("atomistic/trajectory.h5"),
        summary=result("atomistic/production.json"),
    log:
        script=log_path("atomistic/production"),
        lammps=log_path("atomistic/production.lammps"),
    benchmark:
        bench_path("atomistic/production")
    conda:
        "../../../../envs/md.yaml"
    threads: 16
    resources:
        runtime=md_runtime_minutes(config, "production"),
        mem_mb=8000,
    params:
        md=config["atomistic"],
        seed=config["seed"],
        code=code_hash(
            "tasks/cg_benzene/atomistic", "tasks/cg_benzene/lammps_runtime.py", "tasks/cg_benzene/trajectory.py"
        ),
    script:
        "../../../scripts/tasks/cg_benzene/production.py"


rule atomistic_observables:
    input:
        trajectory=rules.production.output.trajectory,
        trace=rules.equilibrate.output.trace,
        equilibration=rules.equilibrate.output.summary,
    output:
        observables=result("atomistic/observables.json"),
        rdf=result("atomistic/rdf.csv"),
        msd=result("atomistic/msd.csv"),
        series=result("atomistic/thermo.csv"),
        figure=report(
            result("atomistic/figures/liquid.png"),
            caption="../../../report/atomistic_liquid.rst",
            category="Atomistic reference",
        ),
    log:
        log_path("atomistic/observables"),
    benchmark:
        bench_path("atomistic/observables")
    conda:
        "../../../../envs/md.yaml"
    resources:
        mem_mb=4000,
    params:
        observables=config["observables"],
        code=code_hash("tasks/cg_benzene/observables.py", "tasks/cg_benzene/reference.py"),
    script:
        "../../../scripts/tasks/cg_benzene/atomistic_observables.py"
