(module
  (func $divmod (param $a i32) (param $b i32) (result i32 i32)
    (i32.div_u (local.get $a) (local.get $b)) (i32.rem_u (local.get $a) (local.get $b)))
  (func $swap (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
  (func (export "main") (result i32 i64)
    (local $i i32) (local $q i32) (local $r i32) (local $acc i64)
    loop $l
      (call $divmod (i32.add (i32.const 1000) (i32.mul (local.get $i) (i32.const 37))) (i32.add (local.get $i) (i32.const 3)))
      local.set $r
      local.set $q
      local.get $acc
      local.get $q
      local.get $r
      block (param i32 i32) (result i64)
        i32.mul
        i64.extend_i32_u
      end
      i64.add
      local.set $acc
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 200)))
    end
    (call $swap (local.get $i) (local.get $acc))
    local.set $i
    local.set $acc
    (local.get $i) (local.get $acc)))
