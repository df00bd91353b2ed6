(module
  ;; A state machine driven by br_table: each state updates the accumulator and picks the next state.
  (func (export "main") (result i32)
    (local $state i32) (local $steps i32) (local $acc i32)
    (loop $run
      (block $s3 (block $s2 (block $s1 (block $s0
        (br_table $s0 $s1 $s2 $s3 (local.get $state)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 3)))
        (local.set $state (i32.const 2)) (br $s3))
        (local.set $acc (i32.mul (local.get $acc) (i32.const 3)))
        (local.set $state (i32.const 0)) (br $s3))
        (local.set $acc (i32.xor (local.get $acc) (i32.const 0x5a5a)))
        (local.set $state (i32.and (local.get $acc) (i32.const 1))))
      (br_if $run (i32.lt_u (local.tee $steps (i32.add (local.get $steps) (i32.const 1))) (i32.const 2000))))
    (local.get $acc)))
