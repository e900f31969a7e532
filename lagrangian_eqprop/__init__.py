"""lagrangian_eqprop"""
