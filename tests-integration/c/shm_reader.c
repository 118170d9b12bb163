/* The spec's shared-memory process B: OpenFileMapping(FILE_MAP_ALL_ACCESS, NAME),
 * MapViewOfFile, print the string at offset 0.
 * Usage: shm_reader NAME */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    HANDLE h;
    LPVOID base;
    char buf[64] = {0};
    if (argc < 2) return 1;
    h = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, argv[1]);
    if (!h) { printf("OpenMapping Error %lu\n", GetLastError()); return 1; }
    base = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    if (!base) { printf("map failed: %lu\n", GetLastError()); return 1; }
    strncpy(buf, (char *)base, sizeof buf - 1);
    printf("what I read from share memory is: %s\n", buf);
    UnmapViewOfFile(base);
    CloseHandle(h);
    return 0;
}
