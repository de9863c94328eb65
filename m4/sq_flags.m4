# SQ_CHECK_CFLAG(FLAG, VARIABLE)
# Append FLAG to VARIABLE when the C compiler accepts it without a warning.
AC_DEFUN([SQ_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([sq_cv], [sq_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [sq_cv], [
    sq_saved_cflags=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])], [AS_VAR_SET([sq_cv], [yes])], [AS_VAR_SET([sq_cv], [no])])
    CFLAGS=$sq_saved_cflags
  ])
  AS_VAR_IF([sq_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([sq_cv])
])
