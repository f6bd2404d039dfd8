/*
 * test_ui.c - the trace viewer's compiled-in table and lookup (receivers/ui.h):
 * every file of src/receivers/ui/ is in the table with its exact bytes (read
 * back from the source tree, found from __FILE__), a NUL after them, and an ETag of
 * 16 hex digits; "/" is index.html; names outside the table, partial names,
 * dot segments and other prefixes find nothing; each asset's type follows its
 * extension. (Serving over HTTP: tests/integration/test_ui.py.)
 */
#include "check.h"

#include "receivers/ui.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_table_matches_the_source_files(void)
{
    /* __FILE__ is <source>/tests/unit/receivers/test_ui.c (CMake compiles by absolute path) */
    char dir[4096];
    const char *me = __FILE__, *tail = strstr(me, "tests/unit/receivers/test_ui.c");
    CHECK(tail != NULL);
    if (!tail) return;
    snprintf(dir, sizeof(dir), "%.*ssrc/receivers/ui", (int)(tail - me), me);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        files++;
        char path[4400], url[300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(url, sizeof(url), "/ui/%s", e->d_name);
        const pc_ui_asset *a = pc_ui_find(url);
        CHECK(a != NULL);
        if (!a) continue;
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f) continue;
        char *buf = malloc(a->len + 2);
        size_t n = fread(buf, 1, a->len + 1, f);
        fclose(f);
        CHECK_EQ_INT(n, a->len);
        CHECK(memcmp(buf, a->data, a->len) == 0);
        CHECK_EQ_INT(a->data[a->len], 0);
        free(buf);
        CHECK_EQ_INT(strlen(a->etag), 18);
        CHECK(a->etag[0] == '"' && a->etag[17] == '"');
        for (int i = 1; i < 17; i++) CHECK(isxdigit((unsigned char)a->etag[i]));
        CHECK(strcmp(pc_ui_content_type(a->name), "application/octet-stream") != 0);
    }
    closedir(d);
    CHECK_EQ_INT(files, pc_ui_n_assets);
    /* ETags differ between files (their bytes differ) */
    for (size_t i = 0; i < pc_ui_n_assets; i++)
        for (size_t j = i + 1; j < pc_ui_n_assets; j++)
            CHECK(strcmp(pc_ui_assets[i].etag, pc_ui_assets[j].etag) != 0);
}

static void test_lookup(void)
{
    const pc_ui_asset *index = pc_ui_find("/");
    CHECK(index != NULL && strcmp(index->name, "index.html") == 0);
    CHECK(pc_ui_find("/ui/index.html") == index);
    CHECK(pc_ui_find("/ui/app.js") != NULL);
    static const char *const misses[] = {
        "", "/ui/", "/ui", "/index.html", "/app.js", "/ui/app", "/ui/app.j", "/ui/app.jsx",
        "/ui/APP.JS", "/ui//app.js", "/ui/./app.js", "/ui/../ui/app.js", "/ui/app.js/",
        "/ui/../../etc/passwd", "/UI/app.js", "//", "/ui/.", "/ui/..", "ui/app.js", " /",
    };
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        if (pc_ui_find(misses[i])) fprintf(stderr, "found: \"%s\"\n", misses[i]);
        CHECK(pc_ui_find(misses[i]) == NULL);
    }
}

static void test_content_types(void)
{
    CHECK_EQ_STR(pc_ui_content_type("index.html"), "text/html; charset=utf-8");
    CHECK_EQ_STR(pc_ui_content_type("app.css"), "text/css; charset=utf-8");
    CHECK_EQ_STR(pc_ui_content_type("app.js"), "text/javascript; charset=utf-8");
    CHECK_EQ_STR(pc_ui_content_type("icon.svg"), "image/svg+xml");
    CHECK_EQ_STR(pc_ui_content_type("a.js.bak"), "application/octet-stream");
    CHECK_EQ_STR(pc_ui_content_type("html"), "application/octet-stream");
    CHECK_EQ_STR(pc_ui_content_type(""), "application/octet-stream");
}

int main(void)
{
    RUN(test_table_matches_the_source_files);
    RUN(test_lookup);
    RUN(test_content_types);
    return CHECK_DONE();
}
