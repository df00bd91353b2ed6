(module
  (global $counter (export "counter") (mut i64) (i64.const 0))
  (global $scale f64 (f64.const 1.5))
  (global $last (mut f32) (f32.const 0))
  (func (export "main") (result i64)
    (local $i i32)
    (loop $l
      (global.set $counter (i64.add (global.get $counter) (i64.extend_i32_s (local.get $i))))
      (global.set $last (f32.demote_f64 (f64.mul (global.get $scale) (f64.convert_i32_u (local.get $i)))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (i64.add (global.get $counter) (i64.trunc_f32_s (global.get $last)))))
