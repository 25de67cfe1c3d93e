/* clone3.c - clone3(2) with a child function (see clone3.h).
 *
 * Why assembly: the child of clone3 resumes right after the syscall
 * instruction, on the new stack, with the parent's registers. C code cannot
 * run there (its frame is on the parent's stack), so the syscall, the call
 * of fn in the child and its exit are a few instructions of our own, as
 * glibc's clone() is. fn and arg travel in registers the syscall keeps. */
#include "exec/clone3.h"

#include <errno.h>
#include <sys/syscall.h>

#if defined(__x86_64__) && defined(SYS_clone3)
long drover_clone3_asm(struct spawn_clone_args *a, unsigned long size, int (*fn)(void *),
                       void *arg);
__asm__(".text\n"
        ".globl drover_clone3_asm\n"
        ".type drover_clone3_asm,@function\n"
        "drover_clone3_asm:\n"
        "  mov %rdx, %r8\n"  /* fn: syscall keeps r8, r9 */
        "  mov %rcx, %r9\n"  /* arg */
        "  mov $435, %eax\n" /* SYS_clone3 */
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jnz 1f\n"
        "  xor %ebp, %ebp\n" /* the child: outermost frame */
        "  and $-16, %rsp\n"
        "  mov %r9, %rdi\n"
        "  call *%r8\n"
        "  mov %eax, %edi\n"
        "  mov $60, %eax\n" /* SYS_exit */
        "  syscall\n"
        "  hlt\n"
        "1: ret\n"
        ".size drover_clone3_asm, .-drover_clone3_asm\n");
#define HAVE_CLONE3_ASM 1
#elif defined(__aarch64__) && defined(SYS_clone3)
long drover_clone3_asm(struct spawn_clone_args *a, unsigned long size, int (*fn)(void *),
                       void *arg);
__asm__(".text\n"
        ".globl drover_clone3_asm\n"
        ".type drover_clone3_asm,%function\n"
        "drover_clone3_asm:\n"
        "  mov x9, x2\n"   /* fn: the syscall keeps every register but x0 */
        "  mov x10, x3\n"  /* arg */
        "  mov x8, #435\n" /* SYS_clone3 */
        "  svc #0\n"
        "  cbnz x0, 1f\n"
        "  mov x29, xzr\n"
        "  mov x0, x10\n"
        "  blr x9\n"
        "  mov x8, #93\n" /* SYS_exit */
        "  svc #0\n"
        "1: ret\n"
        ".size drover_clone3_asm, .-drover_clone3_asm\n");
#define HAVE_CLONE3_ASM 1
#endif

long spawn_clone3(struct spawn_clone_args *a, int (*fn)(void *), void *arg)
{
#ifdef HAVE_CLONE3_ASM
  return drover_clone3_asm(a, sizeof *a, fn, arg);
#else
  (void)a;
  (void)fn;
  (void)arg;
  return -ENOSYS;
#endif
}
