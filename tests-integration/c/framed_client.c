/* The spec's pipewithsize client: a byte-mode pipe where each message is a
 * 4-byte little-endian length, then the bytes. Sends each argument that way.
 * Usage: framed_client NAME MSG... */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char path[MAX_PATH];
    char buf[MAX_PATH];
    DWORD n, len;
    HANDLE h;
    int i;
    if (argc < 2) return 1;
    snprintf(path, sizeof path, "\\\\.\\pipe\\%s", argv[1]);
    for (;;) {
        h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE) break;
        if (GetLastError() != ERROR_PIPE_BUSY || !WaitNamedPipeA(path, 20000)) {
            printf("open failed: %lu\n", GetLastError());
            return 1;
        }
    }
    for (i = 2; i < argc; i++) {
        len = (DWORD)strlen(argv[i]);
        if (len + sizeof(DWORD) > sizeof buf) return 1;
        memcpy(buf, &len, sizeof(DWORD)); /* x86 is little-endian, as the format wants */
        memcpy(buf + sizeof(DWORD), argv[i], len);
        if (!WriteFile(h, buf, len + sizeof(DWORD), &n, NULL)) {
            printf("write failed: %lu\n", GetLastError());
            return 1;
        }
    }
    CloseHandle(h);
    printf("sent\n");
    return 0;
}
