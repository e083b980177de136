/* LD_PRELOAD shim: answers Xen privcmd hypercall ioctls with plausible fake data so that
 * `xl -N create cfg` (dry run) can run without a hypervisor. Taken from the team notes
 * (xl-offline/fakexen.c). check-xl-config builds it on first use and runs xl with it
 * inside a private mount namespace whose /dev holds dummy /dev/xen/* files.
 * build: gcc -shared -fPIC -O2 -o fakexen.so fakexen.c -ldl */
#define _GNU_SOURCE
#define __XEN_TOOLS__ 1
#include <stdlib.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/sysctl.h>
#include <xen/version.h>
#include <xen/sys/privcmd.h>

int ioctl(int fd, unsigned long req, ...) {
    va_list ap; va_start(ap, req); void *arg = va_arg(ap, void *); va_end(ap);
    static int (*real)(int, unsigned long, void *);
    if (!real) real = dlsym(RTLD_NEXT, "ioctl");
    if (req != IOCTL_PRIVCMD_HYPERCALL) return real(fd, req, arg);
    privcmd_hypercall_t *h = arg;
    if (getenv("FAKEXEN_DEBUG")) fprintf(stderr, "fakexen: hypercall op=%llu a0=%llx\n",
                                         (unsigned long long)h->op, (unsigned long long)h->arg[0]);
    switch (h->op) {
    case __HYPERVISOR_xen_version:
        switch (h->arg[0]) {
        case XENVER_version: return (4 << 16) | 17;
        case XENVER_extraversion: strcpy((char *)h->arg[1], ".0-fake"); return 0;
        case XENVER_pagesize: return 4096;
        default: return 0;
        }
    case __HYPERVISOR_sysctl: {
        struct xen_sysctl *s = (void *)h->arg[0];
        if (s->cmd == XEN_SYSCTL_physinfo) {
            struct xen_sysctl_physinfo *p = &s->u.physinfo;
            memset(p, 0, sizeof(*p));
            p->threads_per_core = 1; p->cores_per_socket = 2; p->nr_cpus = 2; p->max_cpu_id = 1;
            p->nr_nodes = 1; p->max_node_id = 0; p->cpu_khz = 2000000;
            p->capabilities = XEN_SYSCTL_PHYSCAP_hvm | XEN_SYSCTL_PHYSCAP_pv |
                              XEN_SYSCTL_PHYSCAP_hap | XEN_SYSCTL_PHYSCAP_shadow;
            p->total_pages = p->free_pages = (16ULL << 30) / 4096; p->max_mfn = p->total_pages;
            return 0;
        }
        return 0; /* other sysctls: succeed with zeroed output */
    }
    default:
        return 0;
    }
}
