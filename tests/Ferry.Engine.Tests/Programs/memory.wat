(module
  (memory (export "memory") 3)
  (func (export "main") (result i64)
    (local $a i32) (local $sum i64)
    (loop $fill
      (i32.store (local.get $a) (i32.mul (local.get $a) (i32.const 2654435761)))
      (i64.store16 offset=2 (local.get $a) (i64.extend_i32_u (local.get $a)))
      (br_if $fill (i32.lt_u (local.tee $a (i32.add (local.get $a) (i32.const 60))) (i32.const 196000))))
    (local.set $a (i32.const 0))
    (loop $sum
      (local.set $sum (i64.add (local.get $sum) (i64.load32_u (local.get $a))))
      (br_if $sum (i32.lt_u (local.tee $a (i32.add (local.get $a) (i32.const 124))) (i32.const 196000))))
    (local.get $sum)))
