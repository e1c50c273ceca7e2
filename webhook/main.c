/* placeholder until the webhook lands */
int main(void);
int main(void) { return 0; }
