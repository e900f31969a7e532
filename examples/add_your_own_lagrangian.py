"""Add your own system: a spring pendulum (elastic pendulum) written in SymPy, checked, trained.

1. Write the Lagrangian with `sympy.physics.mechanics.dynamicsymbols` and compile it.
2. Check that the EqProp gradient (echo) agrees with backpropagation through time (BPTT)
   through the same integrator: cosine similarity and relative error.
3. Build a `Task` by hand (student–teacher: recover the spring stiffness and rest length from
   observed swings) and train it with the same loop the CLI uses.

    python examples/add_your_own_lagrangian.py [OUT_DIR]
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy  # noqa: E402
from sympy.physics.mechanics import dynamicsymbols  # noqa: E402

import lagrangian_eqprop as lep  # noqa: E402
from lagrangian_eqprop.diagnostics import gradient_agreement  # noqa: E402
from lagrangian_eqprop.tasks import Task  # noqa: E402
from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402

# ---------------------------------------------------------------- 1. the Lagrangian
# A mass m on a spring (stiffness k, rest length l0) swinging in gravity: polar coordinates
# r (spring length) and θ (angle from the downward vertical).
t = dynamicsymbols._t
r, theta = dynamicsymbols("r theta")
m, k, l0 = sympy.symbols("m k l0")
g = sympy.Float(9.81)
kinetic = sympy.Rational(1, 2) * m * (r.diff(t) ** 2 + r**2 * theta.diff(t) ** 2)
potential = -m * g * r * sympy.cos(theta) + sympy.Rational(1, 2) * k * (r - l0) ** 2
L = kinetic - potential

model = lep.compile_lagrangian(L, [r, theta], parameters=[m, k, l0], time=t)
print("L =", L)
print("separable:", model.separable is not None, "| time-reversible (echo exact):", model.time_reversible)
for eq in lep.euler_lagrange_equations(model):
    print("  ", sympy.simplify(eq.lhs), "= 0")

# The mass matrix diag(m, m r²) depends on r: not separable, so every step is an implicit
# (Newton) step of the midpoint rule. Rules, root finders and estimators are objects.
dt, num_steps = 0.02, 100
integ = lep.VariationalIntegrator(model, dt, rule=lep.Midpoint(), root_finder=lep.Newton(max_steps=20))

student = {"m": jnp.asarray(1.0), "k": jnp.asarray(20.0), "l0": jnp.asarray(0.9)}
teacher = {"m": jnp.asarray(1.0), "k": jnp.asarray(30.0), "l0": jnp.asarray(1.0)}

# ------------------------------------------------- 2. EqProp (echo) against BPTT
q0, v0 = jnp.array([1.1, 0.4]), jnp.zeros(2)
target = integ.simulate(teacher, q0, v0, num_steps).q
cost = lep.TrackingCost(target, (0, 1), weight=1.0 / num_steps)
echo = jax.jit(lambda p: lep.eqprop_gradient(integ, p, cost, method=lep.Echo(beta=1e-3), q0=q0, v0=v0,
                                             num_steps=num_steps))(student)
bptt = jax.jit(lambda p: lep.bptt_gradient(integ, p, cost, q0=q0, v0=v0, num_steps=num_steps))(student)
agreement = gradient_agreement(echo, bptt)["all"]
print(f"\necho vs BPTT: cosine similarity {agreement['cosine']:.12f}, norm ratio {agreement['norm_ratio']:.9f}, "
      f"max relative error {agreement['max_rel_error']:.2e}")
for name in ("k", "l0"):
    print(f"  dL/d{name}: echo {float(echo[name]): .10e}   BPTT {float(bptt[name]): .10e}")

# ------------------------------------------------------- 3. a hand-built Task, trained
rng = np.random.default_rng(0)
num_samples = 6
samples = {
    "q0": jnp.asarray(np.stack([rng.uniform(1.0, 1.2, num_samples), rng.uniform(-0.5, 0.5, num_samples)], 1)),
    "v0": jnp.zeros((num_samples, 2)),
}
samples["target"] = jax.jit(jax.vmap(lambda q, v: integ.simulate(teacher, q, v, num_steps).q))(
    samples["q0"], samples["v0"])

task = Task(
    name="elastic_pendulum",
    description="recover the spring stiffness and rest length of an elastic pendulum",
    integ=integ,
    num_steps=num_steps,
    params=student,
    # Positivity by reparametrisation, never a clip: k = exp(raw) (multiplicative steps suit a
    # stiffness of order 10), l0 = softplus(raw).
    trainable={"k": "log", "l0": "positive"},
    train=samples,
    test=None,
    cost_fn=lambda sample: lep.TrackingCost(sample["target"], (0, 1), weight=1.0 / num_steps),
    true_params={"k": teacher["k"], "l0": teacher["l0"]},
    energy_state=(samples["q0"][0], samples["v0"][0]),
    display_indices=(0, 1),
    display_offset=np.zeros(2),
    display_labels=("r (m)", "θ (rad)"),
    display_unit="",
    parameter_units={"k": "N/m", "l0": "m"},
    loss_unit="m² and rad² (mixed)",
)
config = TrainConfig(estimator=lep.Echo(beta=1e-3), reference=lep.BPTT(), epochs=40, batch_size=6,
                     learning_rate=0.05, probe_every=10)
out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/elastic_pendulum"
result = Trainer(config, task=task).fit(out_dir, resume=True)
print()
print(result.summary_table())
learned = result.params["echo"]
print(f"learned k = {float(learned['k']):.4f} N/m (true 30), l0 = {float(learned['l0']):.4f} m (true 1.0); "
      f"plots in {out_dir}/plots")
