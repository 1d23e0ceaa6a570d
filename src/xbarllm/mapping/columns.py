"""Columns the mapping adds to the sub-operation table, defined once."""

DIGITS = "digits"          # activation digits = crossbar cycles per pass (Table 7)
DIGITAL = "digital"        # True: the op runs on the digital MAC unit (map_workload's `digital` blocks)
K_PER_XBAR = "k_per_xbar"  # reduction elements one crossbar holds: rows // (S × copies)
ROW_TILES = "row_tiles"    # crossbars a K-long weight column is split over: ceil(K / k_per_xbar)
ACT_GROUPS = "act_groups"  # passes per session: ceil(M / d_c) groups of d_c parallel activations
UNITS = "units"            # independent (session, row tile) pairs: count × N × row_tiles
XBARS = "xbars_used"       # computation crossbars the op occupies: min(units, n_crossbars)
ROUNDS = "rounds"          # times the crossbar pool is reused: ceil(units / xbars_used)
CYCLES = "xbar_cycles"     # digit cycles on the critical path (causal ops skip masked passes)

ALL = [DIGITAL, DIGITS, K_PER_XBAR, ROW_TILES, ACT_GROUPS, UNITS, XBARS, ROUNDS, CYCLES]
