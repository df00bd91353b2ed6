(module
  (memory (export "memory") 1)
  (func (export "main") (result i32)
    (local $i i32)
    (loop $l
      (i32.store (i32.mul (local.get $i) (i32.const 4)) (local.get $i))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 700))))
    ;; Divides by a value that reaches zero after some work.
    (i32.div_s (i32.const 10) (i32.sub (local.get $i) (i32.const 700)))))
