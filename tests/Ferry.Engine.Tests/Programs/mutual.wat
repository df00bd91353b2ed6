(module
  ;; Mutual recursion with work after each call: a restored stack holds frames of both functions, whose calls are
  ;; made afresh from the top before the restored ones are returned to. The empty blocks, instructions without code,
  ;; set each call's instruction index apart from the pc its caller resumes at.
  (func $even (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 1))
      (else (block) (i32.add (call $odd (i32.sub (local.get $n) (i32.const 1))) (i32.const 2)))))
  (func $odd (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (block) (block) (i32.rem_u (i32.mul (call $even (i32.sub (local.get $n) (i32.const 1))) (i32.const 3)) (i32.const 1000003)))))
  (func $walk (param $n i32) (result i32) (local $i i32) (local $sum i32)
    (loop $next
      (local.set $sum (i32.add (local.get $sum) (call $even (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $sum))
  ;; A call the translator drops: nothing returns to it.
  (func $unreachable_call (export "unreachable_call") (param $n i32) (result i32)
    (call $odd (local.get $n))
    (return)
    (call $odd (local.get $n)))
  (func (export "main") (result i32) (call $walk (i32.const 300))))
