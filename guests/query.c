// Weak mobility's example: scans a CSV file of "id,region,amount" records where the data lives and prints
// only the result: how many records match a region, and their total and largest amount.
//   query FILE REGION
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: query FILE REGION\n");
        return 2;
    }
    FILE *file = fopen(argv[1], "r");
    if (!file) {
        perror("query");
        return 1;
    }
    static char line[256];
    unsigned long long records = 0, matches = 0, total = 0, largest = 0;
    size_t region_length = strlen(argv[2]);
    while (fgets(line, sizeof line, file)) {
        records++;
        char *region = strchr(line, ',');
        if (!region) continue;
        region++;
        char *amount = strchr(region, ',');
        if (!amount || (size_t)(amount - region) != region_length || strncmp(region, argv[2], region_length) != 0) continue;
        unsigned long long value = strtoull(amount + 1, NULL, 10);
        matches++;
        total += value;
        if (value > largest) largest = value;
    }
    fclose(file);
    printf("%llu records, %llu in %s, total %llu, largest %llu\n", records, matches, argv[2], total, largest);
    return 0;
}
