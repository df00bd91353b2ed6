(module
  (func (export "main") (result i32)
    (local $i i32) (local $j i32) (local $x i32)
    (local.set $x (i32.const 7))
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (local.set $x (i32.xor (i32.add (i32.mul (local.get $x) (i32.const 1664525)) (i32.const 1013904223))
                               (i32.shr_u (local.get $x) (i32.const 13))))
        (br_if $inner (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 50))))
      (br_if $outer (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 60))))
    (local.get $x)))
