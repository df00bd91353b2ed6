(module
  (memory (export "memory") 2)
  (data $greeting "Ferry moves running programs between machines.")
  (func (export "main") (result i32)
    (local $i i32) (local $sum i32)
    (memory.fill (i32.const 100) (i32.const 0xAB) (i32.const 5000))
    (loop $l
      (memory.init $greeting (i32.mul (local.get $i) (i32.const 64)) (i32.const 0) (i32.const 46))
      (memory.copy (i32.add (i32.const 70000) (local.get $i)) (i32.mul (local.get $i) (i32.const 64)) (i32.const 46))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 40))))
    (data.drop $greeting)
    (local.set $i (i32.const 0))
    (loop $s
      (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $i))))
      (br_if $s (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 72000))))
    (local.get $sum)))
