(module
  (func (export "main") (result f64)
    (local $i i32) (local $x f64) (local $y f32)
    (local.set $x (f64.const 0.5))
    (loop $l
      (local.set $x (f64.add (f64.mul (local.get $x) (f64.const 3.7)) (f64.sqrt (f64.convert_i32_s (local.get $i)))))
      (local.set $x (f64.sub (local.get $x) (f64.floor (local.get $x))))
      (local.set $y (f32.add (local.get $y) (f32.nearest (f32.demote_f64 (f64.mul (local.get $x) (f64.const 10))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 800))))
    (f64.add (local.get $x) (f64.promote_f32 (local.get $y)))))
