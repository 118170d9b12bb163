/* The spec's shared-memory process A: CreateFileMapping(INVALID_HANDLE_VALUE,
 * PAGE_READWRITE, 4096 bytes, NAME), MapViewOfFile, strcpy TEXT. Prints
 * "written", then keeps the mapping until stdin closes (where the spec sleeps).
 * Usage: shm_writer NAME TEXT */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    HANDLE h;
    LPVOID base;
    char c;
    if (argc < 3) return 1;
    h = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, argv[1]);
    if (!h) { printf("create failed: %lu\n", GetLastError()); return 1; }
    base = MapViewOfFile(h, FILE_MAP_WRITE | FILE_MAP_READ, 0, 0, 0);
    if (!base) { printf("map failed: %lu\n", GetLastError()); return 1; }
    strcpy((char *)base, argv[2]);
    printf("written\n");
    fflush(stdout);
    while (fread(&c, 1, 1, stdin) == 1) {}
    UnmapViewOfFile(base);
    CloseHandle(h);
    return 0;
}
