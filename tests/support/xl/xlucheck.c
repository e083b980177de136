/* Offline xl-config syntax + disk-spec check via libxlutil (no hypervisor, no libxl ctx).
 * Adapted from the team notes (xl-offline/xlucheck.c); check-xl-config builds and runs it.
 * build: gcc -O2 -o xlucheck xlucheck.c -lxlutil -lxenlight
 * usage: xlucheck guest.cfg
 *   stdout: name/type/memory and each disk as libxl JSON
 *   exit:   0 parsed, 1 syntax error / unreadable, 2 bad disk spec, 64 usage.
 *   libxlutil prints its errors AND warnings (e.g. "parameter `memory' is not a valid
 *   number", which still returns success) on stderr: callers must treat any stderr
 *   output as a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <libxl.h>
#include <libxlutil.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: xlucheck CONFIG\n"); return 64; }
    XLU_Config *c = xlu_cfg_init(stderr, argv[1]);
    if (!c) { fprintf(stderr, "xlucheck: xlu_cfg_init failed\n"); return 1; }
    if (xlu_cfg_readfile(c, argv[1])) { fprintf(stderr, "xlucheck: parse failed\n"); return 1; }
    const char *s; long l; XLU_ConfigList *dl; int n;
    if (!xlu_cfg_get_string(c, "name", &s, 0)) printf("name=%s\n", s);
    if (!xlu_cfg_get_string(c, "type", &s, 1) || !xlu_cfg_get_string(c, "builder", &s, 1))
        printf("type=%s\n", s);
    if (!xlu_cfg_get_long(c, "memory", &l, 0)) printf("memory=%ld\n", l);
    if (!xlu_cfg_get_list(c, "disk", &dl, &n, 0)) {
        for (int i = 0; i < n; i++) {
            const char *spec = xlu_cfg_get_listitem(dl, i);
            libxl_device_disk d; libxl_device_disk_init(&d);
            if (xlu_disk_parse(c, 1, &spec, &d)) { fprintf(stderr, "xlucheck: bad disk spec: %s\n", spec); return 2; }
            char *j = libxl_device_disk_to_json(NULL, &d);
            printf("disk[%d]=%s\n", i, j ? j : "?");
            free(j);
            libxl_device_disk_dispose(&d);
        }
    }
    xlu_cfg_destroy(c);
    return 0;
}
