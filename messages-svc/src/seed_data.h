/* seed_data.h - the development conversations written by `messages-svc seed`.
 * Our own words. Speaker 0 is the first handle of the conversation. */
#ifndef MSGS_SEED_DATA_H
#define MSGS_SEED_DATA_H

typedef struct seed_line {
  int speaker;
  const char *text;
} seed_line;

/* andrewbrown (0) and bayko (1): a bug hunt that turns into a trip plan. */
static const seed_line seed_ab[] = {
    {0, "Morning! Did you see the alert from the checkout service last night?"},
    {1, "I did. Latency jumped at 02:10 and stayed high for about forty minutes."},
    {0, "Same window as the nightly report job. Coincidence?"},
    {1, "Maybe not. That job reads the orders table with a full scan."},
    {0, "A full scan at night should be harmless unless it eats the read capacity."},
    {1, "Which it does, because the table is still on provisioned mode."},
    {0, "So the checkout reads get throttled while the report runs."},
    {1, "That matches the retry counts in the logs. They go from zero to thousands."},
    {0, "Can we page the report job and slow it down?"},
    {1, "Easy fix: a smaller page size and a short pause between pages."},
    {0, "And switch the table to on-demand so a spike cannot starve checkout."},
    {1, "I'll open a ticket for both. Do you want to pair on the patch after lunch?"},
    {0, "Yes, 1 pm works. I'll bring the graphs."},
    {1, "Patch is up. The report now takes twelve minutes instead of four."},
    {0, "Twelve minutes at night is fine. Latency stayed flat in staging?"},
    {1, "Flat as a pancake. p99 under fifty milliseconds the whole run."},
    {0, "Ship it. Nice work tracking that down so fast."},
    {1, "Thanks! Now I have earned a weekend away from dashboards."},
    {0, "Funny you say that. I was thinking about the lake trail this Saturday."},
    {1, "The one with the ridge loop? I have wanted to do that all summer."},
    {0, "That one. About fourteen kilometres, mostly shade until the ridge."},
    {1, "Count me in. Should we start early to beat the heat?"},
    {0, "Leave town at seven, on the trail by eight. I can drive."},
    {1, "Perfect. I'll pack sandwiches and the good trail mix."},
    {0, "I'll bring water filters and the first aid kit."},
    {1, "Weather says sunny with a small chance of rain after four."},
    {0, "We should be back at the car by three if we keep a steady pace."},
    {1, "Do we need a parking permit at the trailhead?"},
    {0, "Day pass, ten dollars, you can buy it at the kiosk with a card."},
    {1, "Great. Should I invite Londo? He keeps asking about hiking."},
    {0, "Sure, the more the merrier. Tell him about the early start though."},
    {1, "Will do. He will complain about seven am, but he will come."},
    {0, "Ha. Bring a hat, the ridge has no shade at all."},
    {1, "Hat, sunscreen, spare socks. Anything else?"},
    {0, "A light jacket for the summit, it gets windy up there."},
    {1, "Got it. See you Saturday at seven!"},
};

/* bayko (0) and londo (1): the invitation. */
static const seed_line seed_bl[] = {
    {0, "Hey Londo, Andrew and I are hiking the lake trail on Saturday. Want to join?"},
    {1, "Hiking? On a Saturday? How early are we talking?"},
    {0, "Leaving town at seven. The view from the ridge is worth it, promise."},
    {1, "Seven is a cruel hour, but fine. I will bring the coffee."},
    {0, "Deal. Wear proper shoes, the last part is rocky."},
    {1, "Proper shoes, coffee, and patience for your early mornings. See you then."},
};

#endif
