"""Root-finding strategies of the implicit step (`Auto`, `Chord`, `NewtonKrylov`, `Newton`):
each against the dense Newton path and against independent references (the discrete Legendre
transform by autodiff of the action, `jax.jacfwd` step Jacobians, BPTT), the echo with each,
failures through result codes, and the refusals. Speed is measured in
`benchmarks/implicit_path.py`, never here."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian_eqprop as lep
import models
from lagrangian_eqprop._linear_solvers import KineticJacobian, StepStructure
from lagrangian_eqprop._root import Auto, Chord, Newton, NewtonKrylov

H = 0.05
N = 40
DENSE_NEWTON = Newton()

STRATEGIES = {
    "auto": None,
    "chord": Chord(),
    "chord-dense-reuse": Chord(jacobian="dense"),
    "chord-dense-per-step": Chord(jacobian="dense", reuse=False),
    "newton-krylov": NewtonKrylov(),
    "newton-krylov-unpreconditioned": NewtonKrylov(preconditioner=None),
}


def rel_err(estimate, reference) -> float:
    flat = lambda tree: np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(tree)])
    est, ref = flat(estimate), flat(reference)
    return float(np.max(np.abs(est - ref)) / np.max(np.abs(ref)))


# ------------------------------------------------------------------------------ the cases
@functools.lru_cache(maxsize=None)
def chain_case(rule="midpoint"):
    """Driven FPU chain with a time-dependent wall (separable: the kinetic Jacobian applies)."""
    model, params = models.fpu_chain(5, beta=2.0, time_dependent=True, driven=True)
    us = 0.4 * jnp.sin(0.7 * H * jnp.arange(N + 1.0))[:, None]
    q0 = jnp.asarray([0.5, -0.3, 0.2, 0.4, -0.6])
    v0 = jnp.asarray([0.1, 0.3, -0.2, 0.0, 0.2])
    return model, params, rule, q0, v0, us


@functools.lru_cache(maxsize=None)
def pendulum_case(rule="midpoint"):
    """Double pendulum at large amplitude (non-separable: dense strategies only)."""
    model, params = models.double_pendulum()
    return model, params, rule, jnp.asarray([1.2, -0.6]), jnp.asarray([0.4, 0.0]), None


CASES = {"chain": chain_case, "chain-galerkin2": lambda: chain_case(lep.GalerkinLobatto(2)),
         "pendulum": pendulum_case}


@functools.lru_cache(maxsize=None)
def trajectory(case, strategy):
    model, params, rule, q0, v0, us = CASES[case]()
    finder = DENSE_NEWTON if strategy == "newton" else STRATEGIES[strategy]
    integ = lep.VariationalIntegrator(model, H, rule, root_finder=finder)
    return integ, integ.simulate(params, q0, v0, N, us)


def check_against_dense_newton(case, strategy):
    integ, traj = trajectory(case, strategy)
    _, ref = trajectory(case, "newton")
    model, params, _, _, _, us = CASES[case]()
    assert traj.result == lep.RESULTS.successful
    scale = float(jnp.max(jnp.abs(ref.q)))
    # Every strategy stops at the same tolerance (100ε relative per step): the runs agree to a
    # few times that, accumulated over the N steps (measured: up to 1e-11 relative after 40 steps).
    assert float(jnp.max(jnp.abs(traj.q - ref.q))) <= 1e-10 * scale
    assert float(jnp.max(jnp.abs(traj.p - ref.p))) <= 1e-10 * float(jnp.max(jnp.abs(ref.p)))
    # Independent of both: the momenta are the discrete Legendre transform p_k = p⁻(q_k, q_{k+1})
    # by autodiff of the action (DiscreteLagrangian), not by the step's chain-rule residual.
    us = integ.node_inputs(N, us, traj.q.dtype)
    p_minus = jax.vmap(integ.discrete.momentum_minus, in_axes=(None, 0, 0, 0, 0))(
        params, traj.q[:-1], traj.q[1:], (traj.t[:-1], us[:-1]), (traj.t[1:], us[1:]))
    momentum = float(jnp.max(jnp.abs(ref.p)))
    assert float(jnp.max(jnp.abs(p_minus - traj.p[:-1]))) <= 1e-12 * momentum / H
    return traj


@pytest.mark.parametrize("strategy", ["auto", "chord", "chord-dense-reuse", "newton-krylov"])
def test_strategies_agree_with_dense_newton_on_a_separable_chain(strategy):
    traj = check_against_dense_newton("chain", strategy)
    # The kinetic chord needs a few cheap iterations; the reused factorisation about as many.
    assert float(traj.stats.newton_iterations_mean) <= 6


@pytest.mark.parametrize("strategy", [pytest.param("auto", marks=pytest.mark.slow), "chord-dense-reuse",
                                      pytest.param("newton-krylov-unpreconditioned", marks=pytest.mark.slow)])
def test_strategies_agree_with_dense_newton_on_a_non_separable_system(strategy):
    check_against_dense_newton("pendulum", strategy)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["auto", "chord-dense-per-step", "newton-krylov-unpreconditioned"])
@pytest.mark.parametrize("case", ["chain-galerkin2"])
def test_every_strategy_on_every_case(case, strategy):
    # The midpoint chain and pendulum with every strategy: the two tests above.
    if case == "pendulum" and strategy == "chord":
        pytest.skip("the kinetic Jacobian needs a separable model (refusal tested below)")
    check_against_dense_newton(case, strategy)


# ------------------------------------------------------------ the step's linear structure
def _step_equations(integ, params, q, p, node_a, node_b):
    step = integ.stepper

    def equations(z):
        internal, q_b = z[: z.size - q.size].reshape(-1, q.size), z[z.size - q.size:]
        res = step.control_residual(params, q, internal, q_b, node_a, node_b)
        return jnp.ravel(res[:-1].at[0].add(p))

    return equations


@pytest.mark.parametrize("rule", [pytest.param(lep.Midpoint(), marks=pytest.mark.slow),
                                  pytest.param(lep.Trapezoid(), marks=pytest.mark.slow),
                                  pytest.param(lep.GalerkinLobatto(2), marks=pytest.mark.slow),
                                  pytest.param(lep.GalerkinLobatto(3), marks=pytest.mark.slow)])
def test_step_residual_equals_autodiff_of_the_action(rule):
    """The implicit step's chain-rule residual against reverse mode through the quadrature
    (`DiscreteLagrangian.control_residual`), with time dependence, an input and, separately, a
    Lagrange–d'Alembert force; in real and complex arithmetic."""
    rng = np.random.default_rng(0)
    for model, params in (models.fpu_chain(5, time_dependent=True, driven=True), models.damped_oscillator(),
                          models.double_pendulum()):
        integ = lep.VariationalIntegrator(model, H, rule, explicit=False)
        n, s = model.num_dof, rule.num_internal
        q_a, q_b = jnp.asarray(rng.normal(size=n)), jnp.asarray(rng.normal(size=n))
        internal = jnp.asarray(rng.normal(size=(s, n)))
        u = jnp.ones((model.num_inputs,))
        nodes = ((jnp.asarray(0.3), 0.5 * u), (jnp.asarray(0.3 + H), -u))
        ours = integ.stepper.control_residual(params, q_a, internal, q_b, *nodes)
        reference = integ.discrete.control_residual(params, q_a, internal, q_b, *nodes)
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(reference))))
        if model.force_fn is None:  # complex states (the holomorphic echo's passes)
            z = lambda x: x.astype(jnp.complex128) * (1.0 + 0.1j)
            with jax.numpy_dtype_promotion("standard"):
                ours = integ.stepper.control_residual(params, z(q_a), z(internal), z(q_b), *nodes)
                reference = integ.discrete.control_residual(params, z(q_a), z(internal), z(q_b), *nodes)
            np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(reference))))


@pytest.mark.parametrize("rule", [lep.Midpoint(), lep.GalerkinLobatto(2), lep.GalerkinLobatto(3)])
def test_kinetic_jacobian_is_the_step_jacobian_of_a_free_particle(rule):
    """`J₀ = (K ⊗ M)/h` equals the `jax.jacfwd` Jacobian of the step equations when V = 0, and
    `J₀⁻¹J − I` is O(h²) with a potential."""
    for k, expected in ((0.0, 1e-12), (1.0, 0.05)):
        model, params = models.free_chain(4, k=k, beta=0.0)
        integ = lep.VariationalIntegrator(model, H, rule, explicit=False)
        n, s = model.num_dof, rule.num_internal
        q = jnp.asarray([0.1, -0.2, 0.3, 0.05])
        u = model.default_input()
        equations = _step_equations(integ, params, q, jnp.zeros(n), (0.0, u), (H, u))
        z = jnp.concatenate([jnp.ravel(integ.discrete.initial_internal(q, q + 0.01)), q + 0.01])
        jacobian = jax.jacfwd(equations)(z)
        kinetic = integ.stepper.structure(params).kinetic
        assert kinetic is not None and z.size == (s + 1) * n
        inverse_times_j = jax.vmap(kinetic.solve, in_axes=1, out_axes=1)(jacobian)
        assert float(jnp.max(jnp.abs(inverse_times_j - jnp.eye(z.size)))) <= expected
        transposed = jax.vmap(kinetic.transpose_solve, in_axes=1, out_axes=1)(jacobian.T)
        assert float(jnp.max(jnp.abs(transposed - jnp.eye(z.size)))) <= expected


def test_auto_picks_a_strategy_per_model():
    chain, chain_params = models.fpu_chain(5)
    integ = lep.VariationalIntegrator(chain, H, "midpoint")
    assert isinstance(integ.stepper.root_finder, Auto)
    structure = integ.stepper.structure(chain_params)
    assert isinstance(Auto().choose(structure), Chord) and structure.kinetic is not None
    pendulum, pendulum_params = models.double_pendulum()
    structure = lep.VariationalIntegrator(pendulum, H, "midpoint").stepper.structure(pendulum_params)
    assert structure.kinetic is None and structure.size == 2
    assert isinstance(Auto().choose(structure), Newton)
    chosen = Auto(dense_newton_size=1).choose(structure)
    assert isinstance(chosen, Chord) and chosen.jacobian == "dense" and chosen.reuse
    # A constrained model has its multipliers among the unknowns: no kinetic Jacobian.
    assert StepStructure(None, 6).kinetic is None


# ------------------------------------------------------------------ echo and gradients
@pytest.mark.parametrize(("case", "strategy"), [("chain", "auto"),
                                                pytest.param("chain", "newton-krylov", marks=pytest.mark.slow),
                                                pytest.param("pendulum", "chord-dense-reuse", marks=pytest.mark.slow)])
def test_tangent_echo_equals_bptt_with_each_strategy(case, strategy):
    """Exact to round-off (the tangent differentiates the root implicitly), whatever the strategy;
    BPTT through the strategy equals BPTT through dense Newton (same implicit derivative)."""
    model, params, rule, q0, v0, us = CASES[case]()
    integ = lep.VariationalIntegrator(model, H, rule, root_finder=STRATEGIES[strategy])
    cost = lep.TrackingCost(0.3 * jnp.cos(0.9 * H * jnp.arange(N + 1.0))[:, None], [0], weight=1.0 / N)
    kw = dict(q0=q0, v0=v0, num_steps=N, inputs=us)
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    tangent = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="tangent"), **kw)
    assert rel_err(tangent, bptt) <= 1e-10
    dense = lep.VariationalIntegrator(model, H, rule, root_finder=DENSE_NEWTON)
    assert rel_err(bptt, lep.bptt_gradient(dense, params, cost, **kw)) <= 1e-10


@pytest.mark.slow
@pytest.mark.parametrize(("case", "strategy"), [("chain", "auto"),
                                                ("pendulum", "chord-dense-reuse"), ("pendulum", "newton-krylov")])
def test_holomorphic_and_centered_echo_with_each_strategy(case, strategy):
    """The holomorphic echo runs the step solves in complex arithmetic (kinetic and dense chords,
    GMRES); the centered echo's passes run under `vmap` with the root finder's state carried."""
    model, params, rule, q0, v0, us = CASES[case]()
    integ = lep.VariationalIntegrator(model, H, rule, root_finder=STRATEGIES[strategy])
    cost = lep.TrackingCost(0.3 * jnp.cos(0.9 * H * jnp.arange(N + 1.0))[:, None], [0], weight=1.0 / N)
    kw = dict(q0=q0, v0=v0, num_steps=N, inputs=us)
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    holomorphic = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic", beta=1e-2), **kw)
    assert rel_err(holomorphic, bptt) <= 1e-8
    centered = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-4), **kw)
    assert rel_err(centered, bptt) <= 1e-6


def test_vmapped_runs_carry_the_root_finder_state_per_member():
    """A reused factorisation lives in the scan carry: under `vmap` each member keeps its own."""
    model, params, rule, q0, v0, _ = pendulum_case()
    integ = lep.VariationalIntegrator(model, H, rule, root_finder=STRATEGIES["chord-dense-reuse"])
    starts = jnp.stack([q0, 0.5 * q0, -q0])
    batched = jax.jit(jax.vmap(lambda q: integ.final_state(params, q, v0, N, throw=False)))(starts)
    for i in range(3):
        single = integ.final_state(params, starts[i], v0, N)
        np.testing.assert_allclose(batched.q[i], single.q, rtol=0, atol=1e-12)
    assert bool(jnp.all(batched.result == lep.RESULTS.successful))


# ----------------------------------------------------------------------- failures
@pytest.mark.parametrize("strategy", ["auto", "chord", "chord-dense-reuse", "newton-krylov"])
def test_iteration_cap_is_reported(strategy):
    """A stiff quartic chain at a huge step cannot converge in one iteration: the cap is shared
    by the phases of a strategy and its failure is reported, never returned as an answer."""
    model, params = models.fpu_chain(4, beta=100.0)
    finder = {"auto": Auto(max_steps=1), "chord": Chord(max_steps=1), "chord-dense-reuse": Chord(jacobian="dense",
              max_steps=1), "newton-krylov": NewtonKrylov(max_steps=1)}[strategy]
    integ = lep.VariationalIntegrator(model, 0.5, "midpoint", root_finder=finder)
    q0, v0 = jnp.asarray([0.8, -0.6, 0.5, -0.7]), jnp.asarray([1.0, -1.0, 0.5, 0.3])
    traj = integ.simulate(params, q0, v0, 5, throw=False)
    assert traj.result == lep.RESULTS.max_steps_reached
    assert int(traj.stats.first_failed) == 0 and int(traj.stats.newton_iterations_max) == 1
    with pytest.raises(lep.ConvergenceError, match=r"step 0\b.*maximum number of iterations"):
        integ.simulate(params, q0, v0, 5)


def test_a_chord_that_cannot_contract_is_reported_and_auto_falls_back():
    """At ω·h ≫ 2 the kinetic chord diverges (θ ≈ (ωh)²/4 > 1): reported as `diverged` without
    its fallback; with it (the default) Newton–Krylov takes over and agrees with dense Newton."""
    model, params = models.fpu_chain(4, k=40.0, beta=1.0)
    q0, v0 = jnp.asarray([0.3, -0.2, 0.1, 0.25]), jnp.zeros(4)
    bare = lep.VariationalIntegrator(model, 0.5, "midpoint", root_finder=Chord(fallback=False))
    traj = bare.simulate(params, q0, v0, 10, throw=False)
    assert traj.result == lep.RESULTS.diverged and int(traj.stats.first_failed) == 0
    with pytest.raises(lep.ConvergenceError, match="diverged"):
        bare.simulate(params, q0, v0, 10)
    auto = lep.VariationalIntegrator(model, 0.5, "midpoint").simulate(params, q0, v0, 10)
    dense = lep.VariationalIntegrator(model, 0.5, "midpoint", root_finder=DENSE_NEWTON).simulate(params, q0, v0, 10)
    assert auto.result == lep.RESULTS.successful
    np.testing.assert_allclose(auto.q, dense.q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("strategy", ["auto", "chord-dense-reuse"])
def test_non_finite_step_is_located(strategy):
    """`L = ½ẋ² − k√x`: the force is NaN once x < 0; the step that crosses is named."""
    model, params = models.sqrt_well()
    integ = lep.VariationalIntegrator(model, 0.5, "midpoint", root_finder=STRATEGIES[strategy])
    traj = integ.simulate(params, jnp.asarray([0.9]), jnp.asarray([-0.4]), 12, throw=False)
    reference = lep.VariationalIntegrator(model, 0.5, "midpoint", root_finder=DENSE_NEWTON).simulate(
        params, jnp.asarray([0.9]), jnp.asarray([-0.4]), 12, throw=False)
    assert traj.result == lep.RESULTS.newton_nonfinite
    assert int(traj.stats.first_failed) == int(reference.stats.first_failed) >= 1


def test_refusals():
    pendulum, params = models.double_pendulum()
    integ = lep.VariationalIntegrator(pendulum, H, "midpoint", root_finder=Chord(jacobian="kinetic"))
    with pytest.raises(lep.InputError, match="separable"):
        integ.simulate(params, jnp.asarray([0.1, 0.2]), jnp.zeros(2), 3)
    for bad in (lambda: Chord(jacobian="sparse"), lambda: Chord(max_steps=0), lambda: Chord(give_up=1.5),
                lambda: Chord(jacobian="dense", fallback=False), lambda: NewtonKrylov(preconditioner="mass"),
                lambda: NewtonKrylov(forcing=2.0), lambda: Auto(max_steps=0)):
        with pytest.raises(lep.InputError):
            bad()
    with pytest.raises(lep.InputError, match="root_finder must be"):
        lep.VariationalIntegrator(pendulum, H, "midpoint", root_finder="chord")


def test_kinetic_jacobian_needs_a_separable_unconstrained_model():
    pendulum, params = models.double_pendulum()
    assert KineticJacobian.build(pendulum, params, lep.Midpoint(), H) is None
    chain, chain_params = models.fpu_chain(3)
    kinetic = KineticJacobian.build(chain, chain_params, lep.Midpoint(), H)
    r = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_allclose(kinetic.solve(r), -H * r / chain_params["m"], rtol=1e-15)
