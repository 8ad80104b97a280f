/*
 * replay.c (t/fuzz): runs a fuzz target on files, without libFuzzer, so
 * that make test replays the seed corpus and every regression case with
 * the ordinary compiler. Usage: fuzz-replay-TARGET FILE|DIR...
 * A crash or a broken property aborts (the last "replay:" line on stderr
 * names the input); otherwise it prints how many inputs it ran.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static unsigned ran;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = NULL;
	size_t n = 0, cap = 0;

	if (!f) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (n == cap && !(data = realloc(data, cap = cap ? cap * 2 : 4096))) {
			fprintf(stderr, "replay: out of memory\n");
			exit(2);
		}
		size_t got = fread(data + n, 1, cap - n, f);
		if (!got)
			break;
		n += got;
	}
	fclose(f);
	fprintf(stderr, "replay: %s\n", path);
	/* an exact-size copy, so that ASan sees a read past the end */
	unsigned char *exact = malloc(n ? n : 1);
	if (!exact) {
		fprintf(stderr, "replay: out of memory\n");
		exit(2);
	}
	memcpy(exact, data, n);
	free(data);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	ran++;
	return 0;
}

static int run(const char *path)
{
	struct stat st;
	struct dirent **names;
	int n, rc = 0;

	if (stat(path, &st) < 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		perror(path);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char sub[4096];
			snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
			if (run(sub) < 0)
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0;

	for (int i = 1; i < argc; i++)
		if (run(argv[i]) < 0)
			rc = 1;
	printf("replayed %u inputs\n", ran);
	return rc;
}
